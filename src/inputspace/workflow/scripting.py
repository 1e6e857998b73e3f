"""What every Snakemake script needs: its log, its thread count, one-line errors."""

import contextlib
import getpass
import json
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from inputspace.errors import InputspaceError, InputspaceWarning
from inputspace.optimisation import termination
from inputspace.provenance import history, record, stamp
from inputspace.provenance.place import where_made
from inputspace.workflow import job_cost, threads

LOADED_MODULES = "INPUTSPACE_LOADED_MODULES"


def run(main: Callable[[Any], None], snakemake: Any) -> None:
    """Run `main(snakemake)` with stdout and stderr (tqdm included) in the rule's log.

    An InputspaceError ends the job with its one-line message on the console and in the
    log; SIGTERM (a scheduler stopping the job) ends it with a line in the log, after
    every `finally` has run (no half-written output stays); anything else is a bug and
    keeps its traceback in the log.
    """
    start_up_s = job_cost.process_age_s()
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_path, "w", buffering=1) as log,
        warnings.catch_warnings(),
        termination.handled(),
    ):
        warnings.showwarning = _warn_on_console_and_in(log, snakemake.rule)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                print(history.note_line(_note(snakemake)), file=log)
                threads.limit_threads(snakemake.threads)
                working = time.monotonic()
                main(snakemake)
                _stamp_figures(snakemake)
                _note_loaded_modules(snakemake.rule)
                print(job_cost.cost_line(start_up_s, time.monotonic() - working), file=log)
            except InputspaceError as error:
                print(f"ERROR: {error}", file=log)
                print(f"inputspace [{snakemake.rule}]: {error}", file=sys.__stderr__)
                sys.exit(1)
            except termination.Terminated as stop:
                # A scheduler's time limit, scancel or preemption: say so where the job's
                # log is read; the exit status tells Snakemake the job did not finish.
                print(f"STOPPED: {stop}; no output written", file=log)
                sys.exit(128 + signal.SIGTERM)
            except Exception:
                traceback.print_exc(file=log)  # a bug: keep the whole story in the log
                raise


def _note(snakemake: Any) -> dict[str, Any]:
    """What the job's log says first, for the run's crate (inputspace.provenance.history): where
    it runs and for whom, its params by name and the libraries it runs with."""
    params = json.loads(json.dumps(dict(snakemake.params.items()), default=str))
    scripts = getattr(snakemake, "scriptdir", None)  # where the code lies (not in bare tests)
    root = Path(scripts).parent if scripts else None
    return {
        "rule": snakemake.rule,
        "wildcards": dict(snakemake.wildcards.items()),
        "threads": int(snakemake.threads),
        "made_on": where_made(),
        "user": _user(),
        "params": params,
        "libraries": stamp.runtime_libraries(params.get("libraries"), params.get("code"), root),
    }


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a container
        return None


def _stamp_figures(snakemake: Any) -> None:
    """Every figure a job writes carries the job's provenance record."""
    outputs = [Path(p) for p in snakemake.output]
    figures = [p for p in outputs if p.suffix in record.FIGURE_SUFFIXES]
    if not figures:
        return
    job = stamp.Job(
        rule=snakemake.rule,
        wildcards=dict(snakemake.wildcards.items()),
        params=dict(snakemake.params.items()),
        inputs=[Path(p) for p in snakemake.input],
        outputs=[p for p in outputs if p not in figures],
        config=dict(snakemake.config),
        threads=int(snakemake.threads),
    )
    stamp.stamp_figures(job, figures, Path(snakemake.scriptdir).parent)
    for figure in figures:
        print(f"provenance recorded in {figure} and beside it")


def _note_loaded_modules(rule: str) -> None:
    """With INPUTSPACE_LOADED_MODULES naming a folder, the top-level modules this job
    loaded, one file per job: a test holds them against the libraries the rule's code
    digest found (inputspace.provenance.code_digest) without running anything."""
    folder = os.environ.get(LOADED_MODULES)
    if folder:
        names = sorted({name.split(".")[0] for name in sys.modules})
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{rule}-{os.getpid()}.txt").write_text("\n".join(names) + "\n")


def _warn_on_console_and_in(log: TextIO, rule: str) -> Callable[..., None]:
    """A `warnings.showwarning` that puts an InputspaceWarning on the console and in the
    log, one line each; other warnings (libraries') go to the log only."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, InputspaceWarning):
            print(f"WARNING: {message}", file=log)
            print(f"inputspace [{rule}] warning: {message}", file=sys.__stderr__)
        else:
            print(
                warnings.formatwarning(message, category, filename, lineno, line).rstrip(), file=log
            )

    return show
