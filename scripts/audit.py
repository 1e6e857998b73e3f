import tempfile
from pathlib import Path

import yaml

from inputspace import files
from inputspace.model import source_content
from inputspace.provenance import audit, plan
from inputspace.workflow import scripting


def main(snakemake):
    with tempfile.TemporaryDirectory() as folder:
        configfile = Path(folder) / "config.yaml"  # this run's config, as Snakemake holds it
        configfile.write_text(yaml.safe_dump(dict(snakemake.config), sort_keys=False))
        planned = plan.snakemake_plan(
            Path.cwd(),
            Path(snakemake.scriptdir).parent / "Snakefile",
            configfile,
            deployment=snakemake.params.deployment,
        )
    digests = source_content.DigestCache(Path(snakemake.params.digests))
    table = audit.audit_table(
        snakemake.params.figures,
        planned,
        digests.sha256,
        leftovers_under=Path(snakemake.params.leftovers_under),
    )
    files.write_csv(table, snakemake.params.table, sep="\t")
    print(table.status.value_counts().to_string())
    print(f"wrote {snakemake.params.table}: {len(table)} figures")


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
