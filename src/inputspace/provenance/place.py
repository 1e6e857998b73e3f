"""Where a job ran: the host, and the SLURM job, node, partition and cluster when a
scheduler ran it (as a figure's record holds it and a person reads it)."""

import os
import socket
from typing import Any

SLURM_VARIABLES = {  # record key -> variable SLURM sets in a job's environment
    "job_id": "SLURM_JOB_ID",
    "node": "SLURMD_NODENAME",
    "partition": "SLURM_JOB_PARTITION",
    "cluster": "SLURM_CLUSTER_NAME",
}


def where_made(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The host, and the SLURM job, node, partition and cluster when run inside one."""
    environ = os.environ if environ is None else environ
    slurm = {key: environ.get(name) for key, name in SLURM_VARIABLES.items()}
    return {"host": socket.gethostname(), "slurm": slurm if slurm["job_id"] else None}


def describe_place(made_on: dict[str, Any] | None) -> str:
    """'host (SLURM job 52 on node n7, partition gpu, cluster c)', or the host alone."""
    made_on = made_on or {}
    slurm = made_on.get("slurm")
    where = str(made_on.get("host"))
    if slurm:
        where += (
            f" (SLURM job {slurm['job_id']} on node {slurm['node']}, partition "
            f"{slurm['partition']}, cluster {slurm['cluster']})"
        )
    return where
