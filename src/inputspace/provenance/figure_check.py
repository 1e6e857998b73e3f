"""What made a figure file, wherever it lies now (a manuscript folder, a reviewer's mail):

    .venv/bin/python -m inputspace.provenance.figure_check FIGURE... [--checkout DIR]
        [--configfile F] [--workdir DIR]
    .venv/bin/python -m inputspace.provenance.figure_check --rebuild FIGURE... [--checkout DIR]
        [--workdir DIR] [--scratch DIR]

For each file (PNG, GIF, PDF or SVG): the record it carries (models, config, code,
libraries, when and where it was made); whether the workflow in the checkout would make
the same figure today (fresh, or stale and why: Snakemake's own plan, as `snakemake audit`
reads it, and the checkout's figure showing the same picture); and whether the file's
image was changed after it was made. Exit status: 0 every figure fresh and unchanged,
1 any stale or changed, 2 any unverifiable (no record, a damaged one, no checkout).

With --rebuild, each figure is made again in a scratch working directory from the raw model
its record names, by the checkout's rules and the config its record holds, and compared
with its record: the picture and the tables behind it (inputspace.provenance.rebuild).
Exit status: 0 identical, 1 differs, 2 cannot rebuild (the reason in one line).
"""

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inputspace.errors import InputspaceError
from inputspace.provenance import audit, code_digest, plan, rebuild, stamp
from inputspace.provenance.audit import Verdict
from inputspace.provenance.record import describe


@dataclass(frozen=True)
class Answer:
    verdict: Verdict  # Verdict.FRESH, Verdict.STALE or Verdict.UNVERIFIABLE
    lines: list[str]


def check(figure: Path, planned: plan.Plan, workdir: Path) -> Answer:
    """The verdict on one figure file against Snakemake's plan for the checkout (its
    working directory `workdir`)."""
    try:
        record = stamp.embedded(figure)
    except (OSError, ValueError) as error:
        return Answer(
            Verdict.UNVERIFIABLE, [f"{figure}: its provenance record is damaged ({error})"]
        )
    if not record:
        return Answer(Verdict.UNVERIFIABLE, [f"{figure}: carries no provenance record"])
    state, why = today(record, planned, workdir)
    changed = _image_changed(figure, record)
    verdict = (
        Verdict.FRESH
        if state == Verdict.FRESH and changed.startswith("image unchanged")
        else Verdict.STALE
    )
    head = f"{figure}: {state} ({why}); {changed}"
    return Answer(verdict, [head, *describe(record)])


def today(record: dict[str, Any], planned: plan.Plan, workdir: Path) -> tuple[Verdict, str]:
    """('fresh' | 'stale' | 'not made', why): would the workflow make this figure today?
    It would when Snakemake would not make it again and the workflow's copy shows the same
    picture as the record."""
    path = record["figure"]
    state, why = audit.plan_verdict(path, planned)
    if state != Verdict.FRESH:
        return state, why
    damaged = audit.model_verdict(record, workdir)
    if damaged:
        return damaged
    made = workdir / path
    if not made.is_file():
        return Verdict.STALE, f"the checkout has no {path}"
    if stamp.image_sha256(made) != record.get("image_sha256"):
        return Verdict.STALE, f"the workflow's {path} now shows another picture"
    return state, why


def _image_changed(figure: Path, record: dict[str, Any]) -> str:
    if not record.get("image_sha256"):
        return "no image digest recorded: cannot tell whether the file was changed"
    changed = audit.image_verdict(figure, record)
    return changed[1] if changed else "image unchanged since it was made"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inputspace.provenance.figure_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("figures", nargs="+", type=Path, help="figure files, anywhere")
    parser.add_argument("--checkout", type=Path, default=Path.cwd(), help="default: here")
    parser.add_argument("--workdir", type=Path, help="where results/ is (default: the checkout)")
    parser.add_argument("--configfile", type=Path, help="default: the checkout's config.yaml")
    parser.add_argument("--sdm", nargs="+", default=[], help="as the run had it (e.g. conda)")
    parser.add_argument(
        "--rebuild", action="store_true", help="make each figure again from its raw model"
    )
    parser.add_argument("--scratch", type=Path, help="--rebuild's working directory (kept)")
    parser.add_argument("--cores", default="all", help="--rebuild's cores (default: all)")
    args = parser.parse_args(argv)
    figures = [path.resolve() for path in args.figures]
    root = args.checkout.resolve()
    workdir = (args.workdir or root).resolve()
    if not (root / "Snakefile").is_file() or not workdir.is_dir():
        print(f"inputspace: {root} is no inputspace checkout (or {workdir} is missing)")
        return Verdict.UNVERIFIABLE.exit_status
    if args.rebuild:
        return rebuilt(figures, root, workdir, args.scratch, args.cores)
    try:
        configfile = args.configfile.resolve() if args.configfile else None
        planned = plan.snakemake_plan(workdir, root / "Snakefile", configfile, args.sdm)
    except InputspaceError as error:
        print(f"inputspace: {error}")
        return Verdict.UNVERIFIABLE.exit_status
    worst = Verdict.FRESH.exit_status
    for figure in figures:
        if figure.is_file():
            answer = check(figure, planned, workdir)
        else:
            answer = Answer(Verdict.UNVERIFIABLE, [f"{figure}: no such file"])
        print("\n".join(answer.lines))
        worst = max(worst, answer.verdict.exit_status)
    return worst


def rebuilt(
    figures: list[Path], root: Path, workdir: Path, scratch: Path | None, cores: str
) -> int:
    """--rebuild: the figures made again from their raw models (those made by one run's
    config in one scratch run) and compared; the worst exit status."""
    worst, groups = Verdict.FRESH.exit_status, {}
    for figure in figures:
        try:
            made = stamp.embedded(figure) if figure.is_file() else None
            if not made:
                raise rebuild.CannotRebuild("no such file" if not figure.is_file() else "no record")
            config = rebuild.rebuild_config(made, workdir)
        except (InputspaceError, OSError, ValueError) as error:
            print(f"{figure}: cannot rebuild: {error}")
            worst = Verdict.UNVERIFIABLE.exit_status
            continue
        groups.setdefault(json.dumps(config, sort_keys=True), []).append((figure, made))
    for index, (config, made) in enumerate(groups.items()):
        if scratch:
            status = rebuild_group(
                made, json.loads(config), root, workdir, scratch / str(index), cores
            )
        else:
            with tempfile.TemporaryDirectory(prefix="inputspace-rebuild-") as folder:
                status = rebuild_group(made, json.loads(config), root, workdir, Path(folder), cores)
        worst = max(worst, status)
    return worst


def rebuild_group(
    made: list[tuple[Path, dict]],
    config: dict,
    root: Path,
    workdir: Path,
    scratch: Path,
    cores: str,
) -> int:
    threads = max(rebuild.recorded_threads(record) for _, record in made)
    try:
        rebuild.empty_scratch(scratch)
        for _, record in made:
            rebuild.check_raw_models(record, config, scratch / ".snakemake/inputspace-digests.json")
        targets = [record["figure"] for _, record in made]
        rebuild.run_workflow(root, scratch, config, targets, cores, threads)
    except (InputspaceError, OSError, ValueError) as error:
        for figure, _ in made:
            print(f"{figure}: cannot rebuild: {error}")
        return Verdict.UNVERIFIABLE.exit_status
    worst = Verdict.FRESH.exit_status
    for figure, record in made:
        compared = rebuild.compare(record, scratch, workdir)
        same = all(c.identical for c in compared)
        print(
            f"{figure}: rebuilt from the raw model in {scratch} (at most {threads} threads per "
            f"job, as its jobs ran): {'identical' if same else 'differs'}"
        )
        print("\n".join([c.line() for c in compared] + expected_differences(record, root)))
        worst = max(worst, 0 if same else 1)  # identical, or differs
    return worst


def expected_differences(made: dict[str, Any], root: Path) -> list[str]:
    """Where the checkout or this machine differs from what made the figure (code digest,
    library versions): differences are then expected."""
    notes = []
    code = made.get("code") or {}
    script = root / str(code.get("script"))
    package = root / "src" / code_digest.PACKAGE
    if script.is_file() and code_digest.digest(script, package) != code.get("digest"):
        notes.append(f"  note      the checkout's code of rule {made['rule']} is not the record's")
    now = stamp.runtime_libraries(made.get("libraries"))
    moved = plan.version_changes(made.get("libraries") or {}, now)
    if moved:
        notes.append("  note      libraries here differ from the record's: " + ", ".join(moved))
    return notes


if __name__ == "__main__":
    sys.exit(main())
