from inputspace import files
from inputspace.provenance import record
from inputspace.workflow import scripting


def main(snakemake):
    records = [record.read(figure) for figure in snakemake.input]
    with files.atomic_output(snakemake.output[0]) as partial:
        partial.write_text(record.as_html(records))
    print(f"{len(records)} figures")


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
