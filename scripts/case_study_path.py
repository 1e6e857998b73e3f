import pandas as pd
import torch
from transformers import AutoTokenizer

from inputspace import files
from inputspace.analysis import run_measures
from inputspace.analysis.geometry import VocabIndex
from inputspace.errors import InputspaceError
from inputspace.model import vocab
from inputspace.model.manifest import read_manifest
from inputspace.model.prompts import prompt_pairs
from inputspace.optimisation import runs
from inputspace.studies import case_study, figures
from inputspace.workflow import scripting


def logged_embeddings(run: runs.RunEmbeddings, seq: int) -> dict[int, torch.Tensor]:
    """Sequence `seq`'s [t, d] embeddings at every logged step."""
    logged = {step: value[seq] for step, value in run.logged.items()}
    if not logged:
        raise InputspaceError(
            "the run holds no logged embeddings; "
            "set optimize.save_logged_embeddings: true and rerun"
        )
    return logged


def followed_path(tokenizer, manifest, run, seq, source, target, study, matrix, index):
    """The path of the followed word in wording `seq` of the prompt."""
    positions, _ = case_study.locate(tokenizer, manifest, source, study["word"])
    _, toward_ids = case_study.locate(tokenizer, manifest, target, study["toward"])
    path = case_study.follow_path(
        logged_embeddings(run, seq),
        run.start[seq],
        positions,
        run.ids[seq],
        torch.tensor(toward_ids),
        matrix,
        index,
    )
    path.insert(0, "seq", seq)
    return path


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
    index = VocabIndex(matrix, regular)
    path = pd.concat(
        [
            followed_path(tokenizer, manifest, run, seq, source, target, study, matrix, index)
            for seq, (source, target) in enumerate(prompt_pairs(spec))
        ],
        ignore_index=True,
    )
    named = run_measures.name_tokens(path, table.token.to_numpy())
    files.write_parquet(named, snakemake.output.table)
    files.write_csv(named, snakemake.output.csv)
    steps = files.read_parquet(snakemake.input.steps)
    figures.case_path(
        named[named.seq == 0],
        steps[steps.seq == 0],
        len(regular),
        f"{model} / {experiment}: the path of {study['word']!r} toward {study['toward']!r}"
        + (" (first wording)" if run.ids.shape[0] > 1 else ""),
        snakemake.output.figure,
    )
    end = named[named.step == named.step.max()]
    print(end.to_string(index=False))


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
