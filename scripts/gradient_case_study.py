from inputspace import files
from inputspace.analysis.geometry import VocabIndex
from inputspace.model import models, vocab
from inputspace.model.prompts import prompt_pairs
from inputspace.optimisation import engine, experiments, sequences
from inputspace.studies import case_study
from inputspace.workflow import scripting


def main(snakemake):
    spec = snakemake.params.experiment
    study = spec["case_study"]
    source, target = prompt_pairs(spec)[0]  # experiment 1: the first wording
    lm = models.load(
        snakemake.input.model,
        engine.pick_device(snakemake.params.device),
        snakemake.params.attention,
    )
    table = vocab.read_table(snakemake.input.table)
    index = VocabIndex(vocab.read_matrix(snakemake.input.matrix), vocab.regular_ids(table))
    batch = sequences.from_prompts(lm, [source])
    target_logprobs = experiments.target_logprobs(lm, [target])
    gradient, loss = case_study.input_gradient(
        lm, batch.embeddings, batch.attention_mask, batch.sites, target_logprobs
    )
    length = int(batch.attention_mask[0].sum())
    rows = slice(0, length)
    result = case_study.gradient_table(
        batch.ids[0, rows],
        batch.embeddings[0, rows],
        gradient[0, rows].cpu(),
        batch.trainable[0, rows],
        index,
        table.token.to_numpy(),
    )
    followed, _ = case_study.locate(lm.tokenizer, lm.manifest, source, study["word"])
    result["followed"] = result.index.isin(
        followed
    )  # the case study's word, as the figure marks it
    files.write_parquet(result, snakemake.output.table)
    files.write_csv(case_study.readable(result), snakemake.output.csv)
    largest = result.sort_values("grad_norm", ascending=False).head(3)
    print(
        f"loss {float(loss[0]):.4g}; largest gradient norms: "
        + ", ".join(f"{t!r} {n:.3g}" for t, n in zip(largest.token, largest.grad_norm))
    )
    print(
        f"cos(gradient, own embedding) over optimised tokens: "
        f"{result.cos_grad_embedding[result.optimised].describe().to_dict()}"
    )


scripting.run(main, snakemake)  # noqa: F821 (injected by Snakemake)
