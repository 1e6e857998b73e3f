import shutil
from pathlib import Path

from inputspace.errors import InputspaceError
from inputspace.provenance import crate, crate_check
from inputspace.workflow import scripting


def main(snakemake):
    params = snakemake.params
    destination = Path(snakemake.params.crate)
    unchecked = destination.with_name(destination.name + ".unchecked")
    workflow = crate.Workflow(
        root=Path(snakemake.scriptdir).parent,
        rules=params.rules,
        captions=params.captions,
        configfiles=tuple(params.configfiles),
        config=dict(snakemake.config),
        engine=params.engine,
    )
    shutil.rmtree(destination, ignore_errors=True)  # no crate rather than an old one
    try:
        packed = crate.build(Path.cwd(), workflow, list(snakemake.input), unchecked, params.book)
        print(f"{destination}: {packed.files} files, {packed.size:,} bytes, {packed.jobs} jobs")
        check(unchecked, snakemake.log[0])
        crate.publish(unchecked, destination)
    finally:
        shutil.rmtree(unchecked, ignore_errors=True)
    print(f"wrote {destination}, a valid {crate_check.PROFILE}")


def check(folder, log):
    """Every file as the crate records it, and roc-validator's pass at the required level."""
    problems = crate_check.file_problems(folder)
    validation = crate_check.validate(folder)
    for line in [*problems, *validation.issues]:
        print(line)
    passed = validation.checks - validation.failed
    print(f"roc-validator: {passed} of {validation.checks} checks passed")
    if problems or not validation.passed:
        raise InputspaceError(
            f"the crate is not a valid {crate_check.PROFILE} ({len(problems)} files not as "
            f"recorded, {validation.failed} checks failed); see {log}"
        )


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
