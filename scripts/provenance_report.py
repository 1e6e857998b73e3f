from inputspace import files, provenance, scripting


def main(snakemake):
    records = [provenance.read(figure) for figure in snakemake.input]
    with files.atomic_output(snakemake.output[0]) as partial:
        partial.write_text(provenance.as_html(records))
    print(f"{len(records)} figures")


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
