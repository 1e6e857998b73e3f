from inputspace.model import sources
from inputspace.workflow import scripting


def main(snakemake):
    manifest = sources.prepare(
        snakemake.wildcards.model,
        dict(snakemake.params.source),
        snakemake.output[0],
        allow_downloads=snakemake.params.allow_downloads,
    )
    print(
        f"prepared {manifest['name']}: {manifest['architecture']} ({manifest['kind']}), "
        f"vocab {manifest['vocab_size']}, dim {manifest['embedding_dim']}"
    )


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
