import torch
from transformers import AutoTokenizer

from inputspace import files
from inputspace.analysis import run_measures
from inputspace.analysis.geometry import VocabIndex
from inputspace.errors import InputspaceError
from inputspace.model import vocab
from inputspace.model.manifest import read_manifest
from inputspace.optimisation import runs
from inputspace.studies import case_study, figures
from inputspace.workflow import scripting


def logged_embeddings(run: runs.RunEmbeddings) -> dict[int, torch.Tensor]:
    """The single sequence's [t, d] embeddings at every logged step."""
    logged = {step: value[0] for step, value in run.logged.items()}
    if not logged:
        raise InputspaceError(
            "the run holds no logged embeddings; "
            "set optimize.save_logged_embeddings: true and rerun"
        )
    return logged


def main(snakemake):
    figures.use(snakemake.params.style)
    model, experiment = snakemake.wildcards.model, snakemake.wildcards.experiment
    spec = snakemake.params.experiment
    study = spec["case_study"]
    tokenizer = AutoTokenizer.from_pretrained(snakemake.input.model)
    manifest = read_manifest(snakemake.input.model)
    table = vocab.read_table(snakemake.input.table)
    matrix = vocab.read_matrix(snakemake.input.matrix)
    regular = vocab.regular_ids(table)
    run = runs.RunEmbeddings.read(snakemake.input.embeddings)
    positions, _ = case_study.locate(
        tokenizer, manifest, spec["sequences"]["prompt"], study["word"]
    )
    _, toward_ids = case_study.locate(
        tokenizer, manifest, spec["target"]["prompt"], study["toward"]
    )
    path = case_study.follow_path(
        logged_embeddings(run),
        run.start[0],
        positions,
        run.ids[0],
        torch.tensor(toward_ids),
        matrix,
        VocabIndex(matrix, regular),
    )
    named = run_measures.name_tokens(path, table.token.to_numpy())
    files.write_parquet(named, snakemake.output.table)
    files.write_csv(named, snakemake.output.csv)
    steps = files.read_parquet(snakemake.input.steps)
    figures.case_path(
        named,
        steps[steps.seq == 0],
        len(regular),
        f"{model} / {experiment}: the path of {study['word']!r} toward {study['toward']!r}",
        snakemake.output.figure,
    )
    end = named[named.step == named.step.max()]
    print(end.to_string(index=False))


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
