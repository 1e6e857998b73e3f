"""Re-derive a figure from the raw model its record names: the run's config as the record
holds it (cut down to the figure's experiment and models), the raw sources checked against
the record (a GGUF's sha256, a local folder's content digest; a hub revision pinned to the
commit the record names), the checkout's rules run in a scratch working directory for
that one figure, and the result compared with the record: the picture (its image digest)
and the tables behind it (the job's inputs and its other outputs), exactly, else by their
largest absolute and relative differences.
"""

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inputspace.errors import InputspaceError
from inputspace.hashing import sha256_file
from inputspace.model import source_content
from inputspace.model.manifest import is_prepared, read_manifest
from inputspace.provenance import stamp
from inputspace.provenance.record import raw_model

TIMEOUT_S = 6 * 3600


class CannotRebuild(InputspaceError):
    """The figure cannot be made again here (no record to make it from, another raw model,
    a workflow that fails)."""


@dataclass(frozen=True)
class Comparison:
    name: str  # what was compared (the picture, a table's path)
    identical: bool
    detail: str  # how it differs, or ''

    def line(self) -> str:
        return f"  {'same' if self.identical else 'differs':<9} {self.name}" + (
            f": {self.detail}" if self.detail else ""
        )


def rebuild_config(record: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The config of the run that made the figure, cut down to what the figure needs: its
    experiment (if it belongs to one) and the models that experiment and the figure name.
    A local model's relative path is taken relative to `workdir` (the run's working
    directory), a hub revision is pinned to the commit the record names."""
    config = record.get("workflow_config")
    if not config:
        raise CannotRebuild(
            f"{record.get('figure')}: its record holds no run config (made "
            "before records did); make the figure again with the workflow first"
        )
    config = json.loads(json.dumps(config))
    wildcards = record.get("wildcards") or {}
    experiment = wildcards.get("experiment")
    experiments = {experiment: config["experiments"][experiment]} if experiment else {}
    models = {wildcards["model"]} if "model" in wildcards else set()
    models |= set(record.get("models") or {})
    for spec in experiments.values():
        models |= set(spec.get("models", []))
    config["experiments"] = experiments
    config["models"] = {
        name: config["models"][name] for name in sorted(models) if name in config["models"]
    }
    for name, model in config["models"].items():
        model["source"] = _pinned(model["source"], (record.get("models") or {}).get(name), workdir)
    return config


def _pinned(source: dict[str, Any], recorded: dict[str, Any] | None, workdir: Path) -> dict:
    source = dict(source)
    if source.get("kind") == "local" and not Path(source["path"]).expanduser().is_absolute():
        source["path"] = str((Path(workdir) / source["path"]).resolve())
    commit = ((recorded or {}).get("origin") or {}).get("resolved_commit")
    if source.get("kind") == "hub" and commit:
        source["revision"] = commit
    return source


def check_raw_models(record: dict[str, Any], config: dict[str, Any], cache: Path) -> None:
    """CannotRebuild unless each model's raw source here is the one the record names."""
    digests = source_content.DigestCache(cache)
    for name, recorded in (record.get("models") or {}).items():
        if not recorded:
            continue
        source = config["models"][name]["source"]
        found = source_content.pin_here(source, digests)
        if found != source_content.pin(source, recorded.get("origin")):
            raise CannotRebuild(
                f"model {name}: the raw model here is not the one the record names "
                f"({raw_model(recorded)}; here: {found}); provide that one to rebuild from it"
            )


def recorded_threads(record: dict[str, Any]) -> int:
    """The most threads a job behind the figure ran with (the figure's own job, the
    optimisation runs it shows), as recorded; 1 if none was."""
    counts = [record.get("threads")] + [run.get("threads") for run in record.get("runs") or []]
    return max([int(c) for c in counts if c] or [1])


def empty_scratch(scratch: Path) -> None:
    """CannotRebuild unless `scratch` is new or empty: outputs already there (an earlier
    rebuild's) would be taken as made and compared without being rebuilt."""
    if scratch.is_dir() and any(scratch.iterdir()):
        raise CannotRebuild(
            f"the scratch folder {scratch} is not empty (an earlier rebuild's?); "
            "name a new or empty folder"
        )


def run_workflow(
    checkout: Path, scratch: Path, config: dict, targets: list[str], cores: str, threads: int
) -> None:
    """The checkout's workflow, made for `targets` in the scratch folder, each job with at
    most `threads` threads (float sums depend on how many share them)."""
    scratch.mkdir(parents=True, exist_ok=True)
    configfile = scratch / "rebuild.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    log = scratch / "rebuild.log"
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(checkout / "Snakefile"),
        "--directory", str(scratch), "--configfile", str(configfile), "--cores", cores,
        "--max-threads", str(threads), *targets,
    ]  # fmt: skip
    with open(log, "w") as stream:
        try:
            done = subprocess.run(
                command, stdout=stream, stderr=subprocess.STDOUT, timeout=TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise CannotRebuild(
                f"the workflow did not finish within {TIMEOUT_S} s; see {log}"
            ) from None
    if done.returncode != 0:
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        said = next((line for line in reversed(lines) if line.startswith("inputspace")), None)
        raise CannotRebuild(
            f"the workflow failed ({said or lines[-1] if lines else 'no output'}); see {log}"
        )


def compare(record: dict[str, Any], scratch: Path, workdir: Path) -> list[Comparison]:
    """The rebuilt figure and the tables behind it against the record (and, where a table
    differs, against the run's own copy in `workdir` if it is still the recorded one)."""
    figure = scratch / record["figure"]
    same_picture = stamp.image_sha256(figure) == record.get("image_sha256")
    found = [
        Comparison(
            "picture (image digest)", same_picture, "" if same_picture else "another picture"
        )
    ]
    for item in record.get("inputs") or []:
        path = scratch / item["path"]
        if item.get("kind") == "folder":
            found.append(_compare_prepared(item["path"], path, record))
        else:
            found.append(compare_file(item["path"], scratch, workdir, item.get("sha256")))
    for item in record.get("outputs") or []:
        found.append(compare_file(item["path"], scratch, workdir, item.get("sha256")))
    return found


def _compare_prepared(name: str, folder: Path, record: dict) -> Comparison:
    recorded = next(
        (
            m.get("files_sha256")
            for m in (record.get("models") or {}).values()
            if m and m.get("folder") == name
        ),
        None,
    )
    if not is_prepared(folder) or recorded is None:
        return Comparison(
            name, False, "not prepared" if recorded is not None else "no file digests recorded"
        )
    now = read_manifest(folder)["files_sha256"]
    differing = sorted(k for k in recorded.keys() | now.keys() if recorded.get(k) != now.get(k))
    return Comparison(name, not differing, ", ".join(differing))


def compare_file(name: str, scratch: Path, workdir: Path, recorded: str | None) -> Comparison:
    """A rebuilt file against the digest its record names; where they differ, by value
    against the run's own copy (if it is still the one recorded)."""
    made, original = scratch / name, Path(workdir) / name
    if not made.is_file():
        return Comparison(name, False, "not made")
    if sha256_file(made) == recorded:
        return Comparison(name, True, "")
    if original.is_file() and sha256_file(original) == recorded:
        return Comparison(name, False, compare_values(made, original))
    return Comparison(name, False, "other bytes (the run's own copy is gone or changed)")


def compare_values(made: Path, original: Path) -> str:
    """How two tables (Parquet, CSV) or tensor files differ: the largest absolute and
    relative difference of their numbers, and how many other values differ."""
    left, right = _numbers(made), _numbers(original)
    if left is None or right is None:
        return "other bytes"
    if left.keys() != right.keys():
        return f"other columns ({sorted(left.keys() ^ right.keys())})"
    largest_abs = largest_rel = 0.0
    other = 0
    for key in left:
        a, b = left[key], right[key]
        if len(a) != len(b):
            return f"{key}: {len(a)} values, {len(b)} recorded"
        for x, y in zip(a, b):
            if isinstance(x, float) and isinstance(y, float):
                if math.isnan(x) or math.isnan(y):
                    other += math.isnan(x) != math.isnan(y)  # NaN against a number differs
                    continue
                diff = abs(x - y)
                largest_abs = max(largest_abs, diff)
                largest_rel = max(largest_rel, diff / max(abs(x), abs(y), 1e-300))
            elif x != y:
                other += 1
    return f"largest absolute difference {largest_abs:.3g}, largest relative {largest_rel:.3g}" + (
        f", {other} other values differ" if other else ""
    )


def _numbers(path: Path) -> dict[str, list] | None:
    import pandas as pd

    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
    elif path.suffix in (".csv", ".tsv"):
        table = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    elif path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return {k: [float(x) for x in v.ravel()] for k, v in load_file(str(path)).items()}
    else:
        return None
    return {
        column: [
            float(x) if isinstance(x, int | float) and not isinstance(x, bool) else x
            for x in table[column]
        ]
        for column in table.columns
    }
