from pathlib import Path

from inputspace import files, provenance, scripting


def main(snakemake):
    root = Path(snakemake.scriptdir).parent
    table = provenance.audit_table(Path(snakemake.params.figures), snakemake.config, root)
    files.write_csv(table, snakemake.output.table, sep="\t")
    print(table.status.value_counts().to_string())
    print(f"wrote {snakemake.output.table}: {len(table)} figures")


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
