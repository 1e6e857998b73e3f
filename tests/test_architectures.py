"""The architecture matrix: every family inputspace claims, as a tiny random-weight model
built from transformers' own config classes, saved to disk and prepared through the
`local` source like a user's folder. Each must give the model's own logits at the sites,
embed ids as the model consumes them, differentiate correctly (first and second order)
and run the engine."""

from pathlib import Path

import pytest
import torch
from helpers import loss_gradient, make_problem
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from inputspace.analysis import local_dimension, spectrum
from inputspace.errors import InputspaceError
from inputspace.model import models, random_model, sources
from inputspace.optimisation import engine, experiments
from inputspace.optimisation.sequences import from_prompts
from inputspace.studies import landscape

ARCHITECTURES = sorted(random_model.ARCHITECTURES)
PROMPTS = [
    "The animal that says bark is a [MASK].",
    "One plus one is [MASK].",
    "The capital of Italy is [MASK].",
]
PAIRS = {"sequences": {"kind": "pairs", "file": "prompts/pairs.tsv", "count": 3}}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, Path]:
    """Each architecture saved as a plain Hugging Face folder, then prepared as `local`."""
    root = tmp_path_factory.mktemp("architectures")
    folders = {}
    for name in ARCHITECTURES:
        model, tokenizer = random_model.build(
            random_model.TinySpec(architecture=name, hidden_size=32, intermediate_size=64)
        )
        saved = root / "saved" / name
        model.save_pretrained(saved)
        tokenizer.save_pretrained(saved)
        folders[name] = root / "prepared" / name
        sources.prepare(name, {"kind": "local", "path": str(saved)}, folders[name])
    return folders


@pytest.fixture(scope="module")
def loaded(prepared) -> dict[str, models.LanguageModel]:
    return {name: models.load(folder, attention="eager") for name, folder in prepared.items()}


def test_the_matrix_covers_both_kinds(loaded):
    kinds = {name: lm.kind for name, lm in loaded.items()}
    assert {k for k, v in kinds.items() if v == "masked"} == {
        "modernbert",
        "bert",
        "roberta",
        "distilbert",
        "deberta_v2",
    }
    assert len([k for k, v in kinds.items() if v == "causal"]) == 11


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_site_logits_are_the_models_own(loaded, name):
    """With and without padding in the batch: the logits at each site equal the full
    model's logits there, from input_ids (softcapping, scaling, tied weights included)."""
    lm = loaded[name]
    batch = from_prompts(lm, PROMPTS)  # right-padded: the prompts differ in length
    assert (batch.attention_mask == 0).any()
    with torch.no_grad():
        ours = lm.logits_at(batch.embeddings, batch.attention_mask, batch.sites)
        for row in range(len(batch)):
            length = int(batch.attention_mask[row].sum())
            alone = lm.model(input_ids=batch.ids[row : row + 1, :length]).logits[
                0, batch.sites[row]
            ]
            torch.testing.assert_close(ours[row], alone, rtol=1e-5, atol=1e-5)
        padded = lm.model(input_ids=batch.ids, attention_mask=batch.attention_mask).logits
        torch.testing.assert_close(
            ours, padded[torch.arange(len(batch)), batch.sites], rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_embed_is_what_the_model_consumes(loaded, name):
    lm = loaded[name]
    batch = from_prompts(lm, PROMPTS[:1])
    seen = []
    handle = lm.model.get_input_embeddings().register_forward_hook(
        lambda module, args, out: seen.append(out)
    )
    try:
        with torch.no_grad():
            from_ids = lm.model(input_ids=batch.ids).logits
    finally:
        handle.remove()
    torch.testing.assert_close(lm.embed(batch.ids), seen[0])
    with torch.no_grad():
        from_embeds = lm.model(inputs_embeds=lm.embed(batch.ids)).logits
    torch.testing.assert_close(from_embeds, from_ids, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_gradient_and_hessian_vector_products_by_taylor_tests(prepared, name):
    """float64: the first-order Taylor remainder of the loss with the autograd gradient,
    and of the gradient with the Hessian-vector product, shrinks as h^2 (a wrong
    derivative leaves a remainder of order h). A Taylor test, not one finite difference:
    these models keep norms and attention softmax in float32 even in a float64 model, so
    the loss carries rounding of about 1e-7, which a single small difference step would
    amplify."""
    lm = models.load(prepared[name], attention="eager")
    batch = from_prompts(lm, PROMPTS[:1])
    target = experiments.target_logprobs(lm, PROMPTS[2:]).double()
    lm.model.double()
    point = landscape.points_of(batch, batch.embeddings.double(), target)[0]
    x = point.flat()
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    v *= x.norm() / v.norm() * 0.1
    gradient = loss_gradient(lm, point, x)
    product = spectrum.hessian_vector_products(landscape.surface(lm, point), x, v.unsqueeze(0))[0]
    with torch.no_grad():
        base = landscape.loss(lm, point, x)
        loss_remainder = [
            float(abs(landscape.loss(lm, point, x + h * v) - base - h * (gradient @ v)))
            for h in (0.2, 0.1, 0.05)
        ]
    gradient_remainder = [
        float((loss_gradient(lm, point, x + h * v) - gradient - h * product).norm())
        for h in (0.2, 0.1, 0.05)
    ]
    for remainders in (loss_remainder, gradient_remainder):
        assert remainders[1] < 0.35 * remainders[0] and remainders[2] < 0.35 * remainders[1], (
            remainders
        )


class _Narrowing(TorchDispatchMode):
    """The operations, while active, that take a float64 tensor and give a narrower float
    (a value computed from float64 inputs, rounded to float32)."""

    def __init__(self):
        super().__init__()
        self.found: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if any(t.dtype == torch.float64 for t in inputs) and any(
            t.is_floating_point() and t.dtype != torch.float64 for t in outputs
        ):
            self.found.add(str(func))
        return out


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_a_float64_copy_computes_every_value_and_derivative_in_float64(loaded, name):
    """The exact Hessian's arithmetic: a model's own casts to float32 (norms, attention
    softmax, rotary tables) stay float64 in its float64 copy, through the double backward;
    the same model without that guard narrows somewhere (constants made in float32 and
    widened, like DeBERTa's attention scale, are exact in both)."""
    lm = loaded[name]
    double = lm.in_float64()
    batch = from_prompts(lm, PROMPTS[:1])
    target = experiments.target_logprobs(lm, PROMPTS[2:]).double()
    point = landscape.points_of(batch, batch.embeddings.double(), target)[0]
    probes = torch.eye(point.size, dtype=torch.float64)[:2]
    with _Narrowing() as guarded:
        spectrum.hessian_vector_products(landscape.surface(double, point), point.flat(), probes)
    assert guarded.found == set()
    assert lm.model.dtype == torch.float32  # the copy leaves the model as it was


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_float64_for_now_computes_in_float64_and_leaves_the_weights_bit_identical(loaded, name):
    """One copy of the weights, converted in place: inside the block every value is float64
    (as in the float64 copy), and after it the model is the same to the bit."""
    lm = loaded[name]
    before = {key: value.clone() for key, value in lm.model.state_dict().items()}
    batch = from_prompts(lm, PROMPTS[:1])
    target = experiments.target_logprobs(lm, PROMPTS[2:]).double()
    point = landscape.points_of(batch, batch.embeddings.double(), target)[0]
    probes = torch.eye(point.size, dtype=torch.float64)[:2]
    with lm.float64_for_now() as double, _Narrowing() as guarded:
        assert double.model is lm.model and lm.model.dtype == torch.float64
        products = spectrum.hessian_vector_products(
            landscape.surface(double, point), point.flat(), probes
        )
    assert guarded.found == set() and products.dtype == torch.float64
    after = lm.model.state_dict()
    assert lm.model.dtype == torch.float32
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert all(before[key].dtype == after[key].dtype for key in before)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_head_in_float64_for_now_gives_the_float64_models_head_and_leaves_the_body(loaded, name):
    """Only the head is widened: its logits and their Jacobian at a float64 state are the
    float64 copy's to the bit, the body stays float32 inside the block, and after it the
    model is the same to the bit."""
    lm = loaded[name]
    double = lm.in_float64()
    before = {key: value.clone() for key, value in lm.model.state_dict().items()}
    state = torch.randn(lm.model.config.hidden_size, dtype=torch.float64)
    with double.arithmetic():
        expected = local_dimension.forward_jacobian(double.head, state, batch=7)
    with lm.head_in_float64_for_now() as head64, head64.arithmetic(), _Narrowing() as guarded:
        body = {p.dtype for p in lm.model.base_model.parameters()}
        found = local_dimension.forward_jacobian(head64.head, state, batch=7)
    assert guarded.found == set()
    tied = lm.model.get_output_embeddings().weight is lm.model.get_input_embeddings().weight
    assert torch.float32 in body and (tied or body == {torch.float32})
    assert torch.equal(found, expected)
    after = lm.model.state_dict()
    assert all(
        torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before
    )


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_engine_lowers_the_kl_and_keeps_frozen_positions(loaded, name, repo_root, monkeypatch):
    lm = loaded[name]
    problem, _ = make_problem(lm, repo_root, PAIRS)
    settings = engine.Settings(steps=20, lr=0.01)
    run = engine.optimise(lm, problem, settings, progress=False)
    batch = problem.batch
    with torch.no_grad():
        before = engine.kl_divergence(
            lm.logits_at(batch.embeddings, batch.attention_mask, batch.sites),
            problem.target_logprobs,
        )
    assert run.kl.sum() < 0.9 * before.sum()
    frozen = ~batch.trainable
    assert frozen.any()
    assert torch.equal(run.end[frozen], batch.embeddings[frozen])
    prefix = lm.frozen_prefix_length(batch.trainable, batch.attention_mask, batch.sites)
    if prefix and lm.frozen_prefix(batch.embeddings, batch.attention_mask, prefix) is not None:
        monkeypatch.setattr(type(lm), "frozen_prefix_length", lambda *args: 0)
        recomputed = engine.optimise(lm, problem, settings, progress=False)
        torch.testing.assert_close(recomputed.end, run.end, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_embeddings_driven_to_infinity_stop_the_run_at_step_one(loaded, name, repo_root):
    """An lr past float32's range puts every optimised coordinate at +-inf after the first
    Adam step (its step is about lr * sign(gradient)); the run stops there, naming the
    step and the first sequence, whatever the loss then does."""
    lm = loaded[name]
    problem, _ = make_problem(lm, repo_root, PAIRS)
    with pytest.raises(InputspaceError, match="non-finite embeddings at step 1 in sequence 0"):
        engine.optimise(lm, problem, engine.Settings(steps=5, lr=1e20), progress=False)


@pytest.mark.parametrize("name", ["deberta_v2", "gemma2"])
def test_an_architecture_without_sdpa_gets_eager_on_auto_and_a_line_when_chosen(
    prepared, name, monkeypatch
):
    """On a GPU, auto means sdpa, which these two architectures lack in transformers 5.23:
    auto falls back to eager; a config that asks for sdpa is told what to set."""
    told = "does not support attention 'sdpa'; set attention: eager"
    with pytest.raises(InputspaceError, match=told):
        models.load(prepared[name], attention="sdpa")
    monkeypatch.setattr(models, "attention_for", lambda device, setting: "sdpa")
    assert models.load(prepared[name]).model.config._attn_implementation == "eager"
