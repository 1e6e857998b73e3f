"""The jobs that made a working directory's outputs, as Snakemake recorded them (one record
per output in .snakemake/metadata: the rule, its inputs, log and params, when it started
and ended), with the note each job's harness put in the first line of its log (where it
ran, who ran it, its params by name and the libraries it ran with). Read without
Snakemake, so a run's history can be published (inputspace.provenance.crate) from its files alone.
"""

import ast
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inputspace.errors import InputspaceError
from inputspace.provenance import snakemake_internals

NOTE = "inputspace job: "  # how the harness's note starts in a job's log


class HistoryError(InputspaceError):
    """What Snakemake recorded does not tell how an output was made."""


@dataclass(frozen=True, eq=False)
class Job:
    """One finished job: the outputs it made and everything Snakemake recorded of it."""

    rule: str
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    logs: tuple[str, ...]
    params: tuple[Any, ...]  # as Snakemake recorded them: each value, sorted, unnamed
    start: float | None
    end: float | None
    external_id: str | None  # the scheduler's job id (a SLURM job) when one ran it
    input_sha256: dict[str, str] = field(default_factory=dict)  # what it read, where recorded
    note: dict[str, Any] | None = None  # the harness's note in its log

    @property
    def wildcards(self) -> dict[str, str]:
        return dict((self.note or {}).get("wildcards") or {})

    @property
    def name(self) -> str:
        """'rule' or 'rule (model=tiny, experiment=bark)'."""
        wildcards = ", ".join(f"{k}={v}" for k, v in self.wildcards.items())
        return f"{self.rule} ({wildcards})" if wildcards else self.rule


def recorded_outputs(workdir: Path) -> dict[str, dict[str, Any]]:
    """Every output Snakemake holds a finished record of in `workdir`, by its path."""
    records = {}
    for path, file in snakemake_internals.metadata_files(workdir).items():
        try:
            record = json.loads(file.read_text())
        except (ValueError, UnicodeDecodeError, OSError):
            continue  # not one of Snakemake's records
        if isinstance(record, dict) and record.get("rule") and not record.get("incomplete"):
            records[path] = record
    return records


def jobs_by_output(workdir: Path) -> dict[str, Job]:
    """Each recorded output -> the job that made it (outputs of one job share one Job:
    Snakemake gives them the same job hash, inputs and log)."""
    groups: dict[tuple, list[str]] = {}
    records = recorded_outputs(workdir)
    for path, record in records.items():
        key = (
            record["rule"],
            record.get("job_hash"),
            tuple(record.get("input") or ()),
            tuple(record.get("log") or ()),
        )
        groups.setdefault(key, []).append(path)
    found = {}
    for (rule, _, inputs, logs), outputs in groups.items():
        first = records[outputs[0]]
        job = Job(
            rule=rule,
            outputs=tuple(sorted(outputs)),
            inputs=inputs,
            logs=logs,
            params=tuple(_value(text) for text in first.get("params") or ()),
            start=min(_times(records, outputs, "starttime"), default=None),
            end=max(_times(records, outputs, "endtime"), default=None),
            external_id=first.get("external_jobid"),
            input_sha256=_sha256s(first.get("input_checksums") or {}),
            note=read_note(Path(workdir), logs),
        )
        found.update(dict.fromkeys(outputs, job))
    return found


def chain(targets: Iterable[str], jobs: dict[str, Job]) -> list[Job]:
    """The jobs behind `targets`, following each job's recorded inputs back to files no
    job made; every job after the jobs whose outputs it read."""
    ordered: list[Job] = []
    done: set[Job] = set()

    def visit(path: str, wanted_by: str | None) -> None:
        job = jobs.get(path)
        if job is None:
            if wanted_by is None:
                raise HistoryError(
                    f"{path}: Snakemake holds no record of the job that made it "
                    "(.snakemake/metadata); make it again with: snakemake --forcerun "
                    f"{path} (and the run's --configfile)"
                )
            return  # a file no job made: where the chain starts
        if job in done:
            return
        done.add(job)
        for source in job.inputs:
            visit(source, job.rule)
        ordered.append(job)

    for target in targets:
        visit(str(target), None)
    return ordered


def read_note(workdir: Path, logs: Iterable[str]) -> dict[str, Any] | None:
    """The harness's note at the top of a job's log, if the job wrote one."""
    for log in logs:
        try:
            with open(Path(workdir) / log) as text:
                first = text.readline()
        except OSError:
            continue
        if first.startswith(NOTE):
            try:
                return json.loads(first.removeprefix(NOTE))
            except ValueError:
                return None
    return None


def note_line(note: dict[str, Any]) -> str:
    """The note as the first line of a job's log."""
    return NOTE + json.dumps(note, sort_keys=True, default=str)


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a param Snakemake could only record as text


def _times(records: dict, outputs: list[str], key: str) -> list[float]:
    return [records[p][key] for p in outputs if isinstance(records[p].get(key), int | float)]


def _sha256s(checksums: dict[str, str]) -> dict[str, str]:
    return {
        path: value.removeprefix("sha256:")
        for path, value in checksums.items()
        if isinstance(value, str) and value.startswith("sha256:")
    }
