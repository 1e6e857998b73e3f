"""What each job pays before its work starts: its script's imports, in a fresh Python.

    .venv/bin/python benchmarks/job_imports.py [--checkout PATH] [--repeats 5]

For every script in `--checkout`'s scripts/ (default: this checkout), runs a fresh
interpreter that executes only the script's imports (its `src/` first on PYTHONPATH, so
another commit's checkout is timed with its own package), `--repeats` times, and prints
the median wall time and CPU time (user + system: less sensitive than wall time to other
load on the machine), a bare interpreter start's for reference, and which of torch and
transformers the imports loaded. Scripts are timed in rotating order, so a
drift of the machine's speed spreads over all of them. Snakemake's own start in each job
(reading the workflow) is the same for every rule and is not included.
"""

import argparse
import ast
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "transformers")


def imports_of(script: Path) -> str:
    tree = ast.parse(script.read_text())
    imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    return ast.unparse(ast.Module(imports, type_ignores=[]))


def timed_run(code: str, environ: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds and stdout of a fresh Python running `code`."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, check=True
    )
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    environ = {**os.environ, "PYTHONPATH": str(args.checkout / "src"), "HF_HUB_OFFLINE": "1"}
    report = f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    scripts = {p.stem: imports_of(p) + report for p in sorted(args.checkout.glob("scripts/*.py"))}
    names = [*scripts, "(bare interpreter)"]
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    loaded = {}
    for turn in range(args.repeats):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            wall, cpu, out = timed_run(scripts.get(name, "pass"), environ)
            walls[name].append(wall)
            cpus[name].append(cpu)
            loaded[name] = json.loads(out) if name in scripts else []
    print(f"{args.checkout}: median of {args.repeats} fresh processes per script")
    print("| script | imports: wall, s | CPU, s | loads |")
    print("| --- | --- | --- | --- |")
    for name in sorted(names, key=lambda name: statistics.median(cpus[name])):
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {', '.join(loaded[name]) or '-'} |")


if __name__ == "__main__":
    main()
