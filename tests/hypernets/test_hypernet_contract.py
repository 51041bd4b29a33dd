"""The contract every hypernetwork keeps (peft ``PeftCommonTester`` style): one suite, every configuration.

A :class:`HypernetCase` says how to build a tiny hypernetwork for a resolved ``LoRASpec``, how to draw one
sample's input and batch samples into ``forward`` kwargs, and what the hypernetwork promises: the rank of its
output, which parameters start at zero, which parameters may legitimately get no gradient. Every test below
runs once per case (T2L heads L/M/S, D2L per-layer and early-exit input).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from lora_hyper.hypernets.d2l import DocToLoRAHypernet, DocToLoRAHypernetConfig
from lora_hyper.hypernets.t2l import T2LHypernetConfig, TextToLoRAHypernet
from lora_hyper.lora import LoRABatch, LoRASpec

# In the tiny Llama (hidden 64, 2 layers, 2 KV heads): q_proj 64->64, v_proj 64->32, up_proj 64->128, so
# in == out, in > out and in < out are all covered (the M/S heads pad A and B to the wider side).
TARGETS = ["q_proj", "v_proj", "up_proj"]
RANK, SCALE, BATCH = 3, 2.0, 4
HIDDEN = 64  # the tiny Llama's width: D2L features come from it
T2L_EMB = 16
# Every D2L batch gets at least this much left padding, so padding amounts differ between batches.
PAD_EXTRA = 2


# ---------------------------------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class HypernetCase:
    """One hypernetwork configuration and what it promises.

    Args:
        name: test id.
        build: ``(spec, seed) -> hypernet`` (fresh, at its initialisation).
        sample: ``(spec, generator) -> one sample's input``.
        collate: ``(samples, generator) -> forward kwargs`` (the generator fills padding with garbage).
        rank: ``(spec, hypernet) -> rank of the generated LoRABatch``.
        zero_init: ``spec -> names of the parameters that start all-zero`` (what makes the delta zero).
        init_A_shared: at init A is the same for every sample (input-independent), else it depends on the input.
        roundtrip: ``(hypernet, directory, request) -> the hypernet saved and loaded again``.
        no_grad: parameter name -> why it legitimately gets no gradient.
    """

    name: str
    build: Callable[[LoRASpec, int], nn.Module]
    sample: Callable[[LoRASpec, torch.Generator], Tensor]
    collate: Callable[[list[Tensor], torch.Generator], dict[str, Tensor]]
    rank: Callable[[LoRASpec, nn.Module], int]
    zero_init: Callable[[LoRASpec], set[str]]
    init_A_shared: bool
    roundtrip: Callable[[nn.Module, Path, Any], nn.Module]
    no_grad: dict[str, str] = field(default_factory=dict)


def _seeded(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return make()


# Text-to-LoRA: a task embedding per sample.
def _t2l_build(head_size: str) -> Callable[[LoRASpec, int], nn.Module]:
    def build(spec: LoRASpec, seed: int) -> nn.Module:
        cfg = T2LHypernetConfig(
            spec=spec.to_dict(), emb_dim=T2L_EMB, latent=32, head_in=24, head_size=head_size
        )
        return _seeded(seed, lambda: TextToLoRAHypernet(cfg))

    return build


def _t2l_sample(spec: LoRASpec, g: torch.Generator) -> Tensor:
    return torch.randn(T2L_EMB, generator=g)


def _t2l_collate(samples: list[Tensor], g: torch.Generator) -> dict[str, Tensor]:
    return {"task_embeddings": torch.stack(samples)}


def _t2l_roundtrip(hypernet: nn.Module, directory: Path, request: Any) -> nn.Module:
    from lora_hyper.api.text_to_lora import TextToLoRA

    # The encoder config is stored as given and only built on first use, so no encoder is needed here.
    TextToLoRA(hypernet, {"name": "not-built-by-this-test"}, base_model="tiny-llama").save_pretrained(
        directory
    )
    return TextToLoRA.from_pretrained(directory).hypernet


def _t2l_case(head_size: str) -> HypernetCase:
    return HypernetCase(
        name=f"t2l-{head_size}",
        build=_t2l_build(head_size),
        sample=_t2l_sample,
        collate=_t2l_collate,
        rank=lambda spec, h: spec.rank,
        zero_init=lambda spec: {f"heads.{m}.weight" for m in spec.target_modules},
        init_A_shared=True,  # head weights are zero: A is the head bias, a PEFT-style uniform init
        roundtrip=_t2l_roundtrip,
    )


# Doc-to-LoRA: context activations of one chunk per sample ([L, T, d] per layer or [T, d] early exit).
def _d2l_build(per_layer: bool) -> Callable[[LoRASpec, int], nn.Module]:
    def build(spec: LoRASpec, seed: int) -> nn.Module:
        cfg = DocToLoRAHypernetConfig(
            input_dim=HIDDEN, per_layer_input=per_layer, latent_dim=32, n_latents=4, n_blocks=1, n_heads=4
        )
        return _seeded(seed, lambda: DocToLoRAHypernet(cfg, spec))

    return build


def _d2l_sample(per_layer: bool) -> Callable[[LoRASpec, torch.Generator], Tensor]:
    def sample(spec: LoRASpec, g: torch.Generator) -> Tensor:
        t = int(torch.randint(2, 7, (1,), generator=g))
        lead = (spec.n_layers,) if per_layer else ()
        return torch.randn(*lead, t, HIDDEN, generator=g)

    return sample


def _d2l_collate(samples: list[Tensor], g: torch.Generator) -> dict[str, Tensor]:
    """Left-pad (as the tokenizer does) with large garbage the mask must hide."""
    t = max(s.shape[-2] for s in samples) + PAD_EXTRA
    feats, masks = [], []
    for s in samples:
        n = s.shape[-2]
        garbage = 10 * torch.randn(*s.shape[:-2], t - n, s.shape[-1], generator=g)
        feats.append(torch.cat([garbage, s], dim=-2))
        masks.append(torch.arange(t) >= t - n)
    return {"features": torch.stack(feats), "mask": torch.stack(masks)}


def _d2l_roundtrip(hypernet: nn.Module, directory: Path, request: Any) -> nn.Module:
    from lora_hyper.api.doc_to_lora import DocToLoRA
    from lora_hyper.encoders.context import ContextEncoder

    model, tok = request.getfixturevalue("tiny_llama")
    # The same tiny Llama saved to disk: from_pretrained loads the base model from there.
    model_dir = request.getfixturevalue("tiny_llama_dir")
    per_layer = hypernet.config.per_layer_input
    encoder = ContextEncoder(
        model, "per_layer" if per_layer else "early_exit", n_layers=None if per_layer else 1
    )
    DocToLoRA(model, tok, encoder, hypernet, str(model_dir)).save_pretrained(directory)
    return DocToLoRA.from_pretrained(directory).hypernet


def _d2l_case(per_layer: bool) -> HypernetCase:
    return HypernetCase(
        name="d2l-per_layer" if per_layer else "d2l-early_exit",
        build=_d2l_build(per_layer),
        sample=_d2l_sample(per_layer),
        collate=_d2l_collate,
        rank=lambda spec, h: spec.rank + h.bias_rank,  # the chunk's block + the context-free bias block
        zero_init=lambda spec: {"scale_B", *(f"bias_B.{i}" for i in range(len(spec.target_modules)))},
        init_A_shared=False,
        roundtrip=_d2l_roundtrip,
    )


CASES = [_t2l_case("L"), _t2l_case("M"), _t2l_case("S"), _d2l_case(True), _d2l_case(False)]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request) -> HypernetCase:
    return request.param


@pytest.fixture(scope="module")
def lora_spec(tiny_llama) -> LoRASpec:
    spec = LoRASpec(TARGETS, RANK, SCALE).discover(tiny_llama[0])
    assert spec.n_layers == 2 and spec.shapes == {
        "q_proj": (64, 64),
        "v_proj": (64, 32),
        "up_proj": (64, 128),
    }
    return spec


# ---------------------------------------------------------------------------------------------- helpers
def samples(case: HypernetCase, spec: LoRASpec, n: int, seed: int) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [case.sample(spec, g) for _ in range(n)]


def run(case: HypernetCase, hypernet: nn.Module, batch: list[Tensor], pad_seed: int = 0) -> LoRABatch:
    return hypernet(**case.collate(batch, torch.Generator().manual_seed(pad_seed)))


def zero_initialised(hypernet: nn.Module) -> list[str]:
    """Names of the all-zero parameters, except normalisation biases (zero by convention, not by design)."""
    norms = {
        f"{n}.bias" if n else "bias" for n, mod in hypernet.named_modules() if isinstance(mod, nn.LayerNorm)
    }
    return [n for n, p in hypernet.named_parameters() if n not in norms and not bool(p.any())]


def perturb_zero_init(hypernet: nn.Module, seed: int = 1, std: float = 0.1) -> None:
    """Give every zero-initialised parameter small noise, so B (and gradients through it) are not zero."""
    g = torch.Generator().manual_seed(seed)
    params = dict(hypernet.named_parameters())
    names = zero_initialised(hypernet)
    assert names, "nothing was zero-initialised: the hypernetwork's init changed"
    with torch.no_grad():
        for name in names:
            params[name].copy_(torch.randn(params[name].shape, generator=g) * std)


def ready(case: HypernetCase, spec: LoRASpec, seed: int = 0) -> nn.Module:
    """A hypernet in eval mode whose generated deltas are non-zero."""
    hypernet = case.build(spec, seed)
    perturb_zero_init(hypernet)
    return hypernet.eval()


def assert_lora_close(a: LoRABatch, b: LoRABatch, **tol: float) -> None:
    tol = tol or {"rtol": 1e-5, "atol": 1e-6}
    for m in a.spec.target_modules:
        torch.testing.assert_close(a.A[m], b.A[m], **tol, msg=lambda s, m=m: f"A[{m}]: {s}")
        torch.testing.assert_close(a.B[m], b.B[m], **tol, msg=lambda s, m=m: f"B[{m}]: {s}")


def rel_delta_error(out: LoRABatch, ref: LoRABatch) -> float:
    """The largest relative Frobenius error of any module's deltas (compared in float64)."""
    errs = []
    for m in ref.spec.target_modules:
        d, r = out.delta(m).double(), ref.delta(m).double()
        errs.append(float((d - r).norm() / r.norm()))
    return max(errs)


# ---------------------------------------------------------------------------------------------- the contract
def test_output_is_a_lora_batch_shaped_by_the_spec(case, lora_spec):
    hypernet = case.build(lora_spec, 0).eval()
    with torch.no_grad():
        lora = run(case, hypernet, samples(case, lora_spec, BATCH, seed=0))
    assert isinstance(lora, LoRABatch)
    assert lora.spec == lora_spec and lora.scale == SCALE
    assert lora.batch_size == BATCH and lora.dtype == torch.float32
    r = case.rank(lora_spec, hypernet)
    assert set(lora.A) == set(lora.B) == set(TARGETS)
    for m in TARGETS:
        d_in, d_out = lora_spec.shapes[m]
        assert tuple(lora.A[m].shape) == (BATCH, lora_spec.n_layers, r, d_in), m
        assert tuple(lora.B[m].shape) == (BATCH, lora_spec.n_layers, d_out, r), m
        assert tuple(lora.delta(m).shape) == (BATCH, lora_spec.n_layers, d_out, d_in), m
    lora.validate()


def test_every_layer_and_module_gets_its_own_adapter(case, lora_spec):
    hypernet = ready(case, lora_spec)
    with torch.no_grad():
        lora = run(case, hypernet, samples(case, lora_spec, BATCH, seed=0))
    for m in TARGETS:
        delta = lora.delta(m)
        assert bool(torch.isfinite(delta).all()), m
        norms = delta.flatten(2).norm(dim=-1)  # [batch, layer]
        assert bool((norms > 0).all()), f"{m}: some (sample, layer) delta is zero after perturbation"
        for layer in range(1, lora_spec.n_layers):
            assert not torch.allclose(delta[:, layer], delta[:, 0]), f"{m}: layer {layer} repeats layer 0"


def test_zero_delta_at_init(case, lora_spec):
    hypernet = case.build(lora_spec, 0).eval()
    assert set(zero_initialised(hypernet)) == case.zero_init(lora_spec)
    with torch.no_grad():
        lora = run(case, hypernet, samples(case, lora_spec, BATCH, seed=0))
    for m in TARGETS:
        # Both hypernets promise a standard LoRA init: B exactly zero, A not, so B gets gradients at step 0.
        assert bool((lora.B[m] == 0).all()), f"B[{m}] is not exactly zero at init"
        assert bool((lora.delta(m) == 0).all()), m
        rows = lora.A[m].norm(dim=-1)  # [batch, layer, rank]
        assert bool((rows > 0).all()), f"A[{m}] has an all-zero rank row at init"
        r = lora_spec.rank  # the generated block (D2L appends its context-free bias block after it)
        same = torch.equal(lora.A[m][:, :, :r], lora.A[m][:1, :, :r].expand_as(lora.A[m][:, :, :r]))
        assert same == case.init_A_shared, f"A[{m}] input-independent at init: {same}"


def test_per_sample_independence(case, lora_spec):
    hypernet = ready(case, lora_spec)
    batch = samples(case, lora_spec, BATCH, seed=0)
    fresh = samples(case, lora_spec, BATCH, seed=1)
    i = 1
    others_changed = [s if j == i else fresh[j] for j, s in enumerate(batch)]
    with torch.no_grad():
        full = run(case, hypernet, batch, pad_seed=0)
        swapped = run(case, hypernet, others_changed, pad_seed=1)
        reversed_ = run(case, hypernet, batch[::-1], pad_seed=2)
        alone = [run(case, hypernet, [s], pad_seed=3) for s in batch]
    assert_lora_close(full.select(i), swapped.select(i))
    for j in range(BATCH):
        assert_lora_close(full.select(j), alone[j])
        assert_lora_close(full.select(j), reversed_.select(BATCH - 1 - j))
        if j != i:  # not vacuous: the other samples' adapters did change with their inputs
            m = TARGETS[0]
            assert (full.delta(m)[j] - swapped.delta(m)[j]).abs().max() > 1e-4


def test_save_load_round_trip(case, lora_spec, tmp_path, request):
    hypernet = ready(case, lora_spec)
    batch = samples(case, lora_spec, BATCH, seed=0)
    with torch.no_grad():
        before = run(case, hypernet, batch)
    loaded = case.roundtrip(hypernet, tmp_path / "model", request)
    assert loaded is not hypernet and type(loaded) is type(hypernet)
    assert loaded.config == hypernet.config and loaded.spec == lora_spec
    state, loaded_state = hypernet.state_dict(), loaded.state_dict()
    assert set(loaded_state) == set(state)
    for k, v in state.items():
        assert torch.equal(loaded_state[k], v), k
    with torch.no_grad():
        after = run(case, loaded.eval(), batch)
    for m in TARGETS:
        assert bool(after.B[m].any()), "the saved weights are the perturbed ones, not the zero init"
        assert torch.equal(after.A[m], before.A[m]) and torch.equal(after.B[m], before.B[m]), m


@pytest.mark.parametrize(
    ("dtype", "max_rel_error"),
    [(torch.bfloat16, 0.05), (torch.float64, 1e-5)],
    ids=["bfloat16", "float64"],
)
def test_to_dtype(case, lora_spec, dtype, max_rel_error):
    hypernet = ready(case, lora_spec)
    batch = samples(case, lora_spec, BATCH, seed=0)
    with torch.no_grad():
        ref = run(case, hypernet, batch)
        hypernet.to(dtype)
        assert {p.dtype for p in hypernet.parameters()} == {dtype}
        assert {b.dtype for b in hypernet.buffers() if b.is_floating_point()} <= {dtype}
        out = run(case, hypernet, batch)  # float32 inputs, as an encoder in another precision hands them over
    assert out.dtype == dtype
    for m in TARGETS:
        assert out.A[m].dtype == out.B[m].dtype == dtype, m
        assert bool(torch.isfinite(out.A[m]).all() and torch.isfinite(out.B[m]).all()), m
    assert rel_delta_error(out, ref) < max_rel_error


def test_gradient_reaches_every_trainable_parameter(case, lora_spec):
    hypernet = case.build(lora_spec, 0).train()
    perturb_zero_init(hypernet)
    names = dict(hypernet.named_parameters())
    assert set(case.no_grad) <= set(names), f"unknown exceptions {set(case.no_grad) - set(names)}"
    lora = run(case, hypernet, samples(case, lora_spec, BATCH, seed=0))
    g = torch.Generator().manual_seed(2)
    loss = sum((lora.delta(m) * torch.randn(lora.delta(m).shape, generator=g)).sum() for m in TARGETS)
    loss.backward()
    for name, p in names.items():
        if not p.requires_grad:
            continue
        if name in case.no_grad:
            assert p.grad is None or not bool(p.grad.any()), f"{name} is listed as gradient-free but got one"
            continue
        assert p.grad is not None, f"{name}: no gradient"
        assert bool(torch.isfinite(p.grad).all()), f"{name}: non-finite gradient"
        assert bool(p.grad.any()), f"{name}: all-zero gradient"
