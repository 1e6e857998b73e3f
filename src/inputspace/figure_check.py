"""What made a figure file, wherever it lies now (a manuscript folder, a reviewer's mail):

    .venv/bin/python -m inputspace.figure_check FIGURE... [--checkout DIR] [--configfile F]
                                                          [--workdir DIR]

For each file: the record it carries (models, config, code, libraries, when and where
it was made), whether the workflow in the checkout would make the same figure today
(fresh or stale, and why, by the rules of `snakemake audit`), and whether the file's
image was changed after it was made. Exit status: 0 every figure fresh and unchanged,
1 any stale or changed, 2 any unverifiable (no record, a damaged one, no checkout).
"""

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inputspace import cluster, provenance
from inputspace.config import checked, load_schema
from inputspace.errors import InputspaceError

FRESH, STALE, UNVERIFIABLE = 0, 1, 2


@dataclass(frozen=True)
class Verdict:
    status: int  # FRESH, STALE or UNVERIFIABLE
    lines: list[str]


def check(figure: Path, root: Path, config: dict[str, Any] | None) -> Verdict:
    """The verdict on one figure file against the checkout at `root` (the current
    directory) and its filled-in `config` (None when it could not be read)."""
    try:
        record = provenance.embedded(figure)
    except (OSError, ValueError) as error:
        return Verdict(UNVERIFIABLE, [f"{figure}: its provenance record is damaged ({error})"])
    if not record:
        return Verdict(UNVERIFIABLE, [f"{figure}: carries no provenance record"])
    changed = _image_changed(figure, record)
    if config is None:
        status, why = UNVERIFIABLE, "no workflow config to compare with"
    else:
        state, why = provenance.audit(record, config, root)
        status = FRESH if state == "fresh" else STALE
    head = f"{figure}: {('fresh', 'stale', 'unverifiable')[status]} ({why}); {changed}"
    if changed.startswith("changed") and status == FRESH:
        status = STALE
    return Verdict(status, [head, *describe(record)])


def _image_changed(figure: Path, record: dict[str, Any]) -> str:
    recorded = record.get("image_sha256")
    if not recorded:
        return "no image digest recorded: cannot tell whether the file was changed"
    if provenance.image_sha256(figure) != recorded:
        return "changed after it was made (its image differs from the one recorded)"
    return "image unchanged since it was made"


def describe(record: dict[str, Any]) -> list[str]:
    """The record as indented lines a person reads."""
    where = cluster.describe_place(record.get("made_on"))
    lines = [f"  made      {record['created']} on {where} by rule {record['rule']}"]
    for name, model in record["models"].items():
        if not model:
            lines.append(f"  model     {name}: not prepared")
            continue
        weights = ", ".join(f"{k} {v}" for k, v in (model.get("weights_sha256") or {}).items())
        lines.append(
            f"  model     {name}: {json.dumps(model['source'])}, revision "
            f"{model.get('revision')}, weights sha256 {weights}"
        )
    lines.append(f"  config    {json.dumps(record['config'], sort_keys=True)}")
    git, code = record["git"], record["code"]
    lines.append(
        f"  code      git {git['commit']}{' (dirty tree)' if git['dirty'] else ''}; package "
        f"{code['package']}; rules {code['rules']}; script {code['script']} "
        f"{code['script_sha256']}"
    )
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items())
    lines.append(f"  libraries {versions}")
    return lines


def workflow_config(root: Path, configfile: Path | None) -> dict[str, Any] | None:
    """The checkout's config (its config.yaml unless `configfile`), checked and filled
    in as the workflow does; None when there is none to read."""
    path = configfile or root / "config.yaml"
    try:
        raw = yaml.safe_load(Path(path).read_text())
        return checked(raw, load_schema(root / "schemas/config.schema.yaml"), root)
    except (OSError, InputspaceError, yaml.YAMLError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inputspace.figure_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("figures", nargs="+", type=Path, help="figure files, anywhere")
    parser.add_argument("--checkout", type=Path, default=Path.cwd(), help="default: here")
    parser.add_argument("--workdir", type=Path, help="where results/ is (default: the checkout)")
    parser.add_argument("--configfile", type=Path, help="default: the checkout's config.yaml")
    args = parser.parse_args(argv)
    figures = [path.resolve() for path in args.figures]
    root = args.checkout.resolve()
    configfile = args.configfile.resolve() if args.configfile else None
    workdir = args.workdir or root
    if not (root / "Snakefile").is_file() or not workdir.is_dir():
        print(f"inputspace: {root} is no inputspace checkout (or {workdir} is missing)")
        return UNVERIFIABLE
    os.chdir(workdir)  # records name their inputs relative to the workdir
    config = workflow_config(root, configfile)
    worst = FRESH
    for figure in figures:
        if figure.is_file():
            verdict = check(figure, root, config)
        else:
            verdict = Verdict(UNVERIFIABLE, [f"{figure}: no such file"])
        print("\n".join(verdict.lines))
        worst = max(worst, verdict.status)
    return worst


if __name__ == "__main__":
    sys.exit(main())
