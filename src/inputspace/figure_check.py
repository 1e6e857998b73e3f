"""What made a figure file, wherever it lies now (a manuscript folder, a reviewer's mail):

    .venv/bin/python -m inputspace.figure_check FIGURE... [--checkout DIR] [--configfile F]
                                                          [--workdir DIR]

For each file (PNG, GIF, PDF or SVG): the record it carries (models, config, code,
libraries, when and where it was made); whether the workflow in the checkout would make
the same figure today (fresh, or stale and why: Snakemake's own plan, as `snakemake audit`
reads it, and the checkout's figure showing the same picture); and whether the file's
image was changed after it was made. Exit status: 0 every figure fresh and unchanged,
1 any stale or changed, 2 any unverifiable (no record, a damaged one, no checkout).
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inputspace import audit, cluster, plan, provenance
from inputspace.errors import InputspaceError

FRESH, STALE, UNVERIFIABLE = 0, 1, 2


@dataclass(frozen=True)
class Verdict:
    status: int  # FRESH, STALE or UNVERIFIABLE
    lines: list[str]


def check(figure: Path, planned: dict[str, plan.Output], workdir: Path) -> Verdict:
    """The verdict on one figure file against Snakemake's plan for the checkout (its
    working directory `workdir`)."""
    try:
        record = provenance.embedded(figure)
    except (OSError, ValueError) as error:
        return Verdict(UNVERIFIABLE, [f"{figure}: its provenance record is damaged ({error})"])
    if not record:
        return Verdict(UNVERIFIABLE, [f"{figure}: carries no provenance record"])
    state, why = today(record, planned, workdir)
    changed = _image_changed(figure, record)
    status = FRESH if state == audit.FRESH and changed.startswith("image unchanged") else STALE
    head = f"{figure}: {state} ({why}); {changed}"
    return Verdict(status, [head, *describe(record)])


def today(
    record: dict[str, Any], planned: dict[str, plan.Output], workdir: Path
) -> tuple[str, str]:
    """('fresh' | 'stale' | 'not made', why): would the workflow make this figure today?
    It would when Snakemake would not make it again and the workflow's copy shows the same
    picture as the record."""
    path = record["figure"]
    state, why = audit.plan_verdict(path, planned)
    if state != audit.FRESH:
        return state, why
    made = workdir / path
    if not made.is_file():
        return audit.STALE, f"the checkout has no {path}"
    if provenance.image_sha256(made) != record.get("image_sha256"):
        return audit.STALE, f"the workflow's {path} now shows another picture"
    return state, why


def _image_changed(figure: Path, record: dict[str, Any]) -> str:
    if not record.get("image_sha256"):
        return "no image digest recorded: cannot tell whether the file was changed"
    changed = audit.image_verdict(figure, record)
    return changed[1] if changed else "image unchanged since it was made"


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
        f"  code      git {git['commit']}{' (dirty tree)' if git['dirty'] else ''}; "
        f"{code['script']} and the modules it imports: sha256 {code['digest']}"
    )
    for run in record["runs"]:
        settings = ", ".join(f"{k} {run.get(k)}" for k in ("device", "precision", "seed"))
        lines.append(f"  run       {run['path']}: {settings}")
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items())
    lines.append(f"  libraries {versions}")
    return lines


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
    workdir = (args.workdir or root).resolve()
    if not (root / "Snakefile").is_file() or not workdir.is_dir():
        print(f"inputspace: {root} is no inputspace checkout (or {workdir} is missing)")
        return UNVERIFIABLE
    try:
        configfile = args.configfile.resolve() if args.configfile else None
        planned = plan.snakemake_plan(workdir, root / "Snakefile", configfile)
    except InputspaceError as error:
        print(f"inputspace: {error}")
        return UNVERIFIABLE
    worst = FRESH
    for figure in figures:
        if figure.is_file():
            verdict = check(figure, planned, workdir)
        else:
            verdict = Verdict(UNVERIFIABLE, [f"{figure}: no such file"])
        print("\n".join(verdict.lines))
        worst = max(worst, verdict.status)
    return worst


if __name__ == "__main__":
    sys.exit(main())
