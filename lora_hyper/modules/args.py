"""The argument groups of the training modules: small documented dataclasses that are the recipe schema.

Each LightningModule takes a few top-level arguments (``base_model``, ``init_from``, ...) and one frozen dataclass
per concern, so a recipe reads::

    model:
      class_path: lora_hyper.modules.d2l.DocToLoRAModule
      init_args:
        base_model: smollm2-135m-instruct
        lora: {targets: [down_proj], rank: 8}
        optim: {lr: 2.0e-4, warmup: 0.6}

LightningCLI (jsonargparse) turns every field into ``--model.init_args.<group>.<field>`` with the help text of the
``Attributes:`` section below, ``--print_config`` shows every field, and a group given partly keeps the module's
defaults for the rest. From Python a group is an instance or a plain dict of the fields to change
(``DocToLoRAModule(optim={"lr": 1e-3})``). Values are checked when a group is built (``__post_init__``), before
anything loads, with one-line :class:`~lora_hyper.validation.InputError` messages.

Checkpoints written before the groups store flat hyperparameters (``lr``, ``rank``, ``latent_dim``, ...);
:func:`from_flat` maps them into the groups on every loading path (``lora-hyper export``, ``--ckpt_path``,
``load_from_checkpoint``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lora_hyper.encoders.context import MODES as ENCODER_MODES
from lora_hyper.encoders.layer_map import LAYER_MAPS
from lora_hyper.encoders.task import BASE_ENCODER, DEFAULT_ENCODER, POOLINGS
from lora_hyper.hypernets.d2l import HEAD_INITS
from lora_hyper.hypernets.t2l import HEAD_SIZES
from lora_hyper.validation import InputError, check_lora_args, positive

SCHEDULES = ("cosine", "linear", "constant")
D2L_OBJECTIVES = ("ce", "distill")
T2L_OBJECTIVES = ("sft", "reconstruction")
RECONSTRUCTION_MODES = ("factors", "delta")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"Unknown {name} {value!r}: use one of {', '.join(map(repr, choices))}.")


def _non_negative(group: Any, *names: str) -> None:
    for name in names:
        value = getattr(group, name)
        if value < 0:
            raise InputError(f"{name} must be >= 0, got {value!r}.")


def _flat(name: str) -> dict[str, str]:
    """Field metadata: the field's flat hyperparameter name in checkpoints written before the groups."""
    return {"flat": name}


# ---------------------------------------------------------------------------------------------- shared groups
@dataclass(frozen=True)
class OptimArgs:
    """AdamW with a warm-up and a decay schedule (weight decay only on matrices the hypernetwork does not exempt).

    Attributes:
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup: warm-up steps (>= 1), or that fraction of the run (< 1).
        schedule: after warm-up: ``cosine`` or ``linear`` decay to zero, or ``constant``.
    """

    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1
    schedule: str = "cosine"

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise InputError(f"lr must be > 0, got {self.lr!r}.")
        if self.weight_decay < 0:
            raise InputError(f"weight_decay must be >= 0, got {self.weight_decay!r}.")
        if self.warmup < 0:
            raise InputError(
                f"warmup must be >= 0 (steps, or a fraction of the run below 1), got {self.warmup!r}."
            )
        _choice("schedule", self.schedule, SCHEDULES)


@dataclass(frozen=True)
class RuntimeArgs:
    """How the frozen models (the base, and any separate encoder model) are loaded.

    Attributes:
        attn_implementation: ``auto`` (flash-attention 2 on CUDA when installed, else sdpa), ``sdpa``, ``eager``
            or ``flash_attention_2``.
        base_dtype: dtype of the frozen models: ``auto`` (bf16 on CUDA, fp32 on CPU), ``bfloat16``, ``float32``, ...
    """

    attn_implementation: str = "auto"
    base_dtype: str = "auto"


@dataclass(frozen=True)
class LoRAArgs:
    """The adapters: which modules get them, their rank and scale (``alpha / sqrt(rank)``, rsLoRA).

    Attributes:
        targets: module names that get adapters (found by name suffix in every layer).
        rank: LoRA rank.
        alpha: LoRA alpha; the scale is folded into B on export.
    """

    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    rank: int = 8
    alpha: float = 16.0

    def __post_init__(self) -> None:
        check_lora_args(self.targets, self.rank)
        object.__setattr__(self, "targets", list(self.targets))


# ---------------------------------------------------------------------------------------------- Doc-to-LoRA
@dataclass(frozen=True)
class DocLoRAArgs:
    """The adapters a document becomes: one rank-``rank`` adapter per chunk, summed per document.

    Attributes:
        targets: module names that get adapters (found by name suffix in every layer).
        rank: LoRA rank of one chunk's adapter.
        scale: LoRA scale (``None``: ``2 * rank**1.5``, the reference's alpha used directly).
        rank_budget: compress internalized adapters to this rank (``None``: keep all chunk ranks).
    """

    targets: list[str] = field(default_factory=lambda: ["down_proj"])
    rank: int = 8
    scale: float | None = None
    rank_budget: int | None = None

    def __post_init__(self) -> None:
        check_lora_args(self.targets, self.rank)
        positive(self.rank_budget, "rank_budget")
        object.__setattr__(self, "targets", list(self.targets))

    @property
    def resolved_scale(self) -> float:
        return float(self.scale) if self.scale is not None else 2.0 * self.rank**1.5


@dataclass(frozen=True)
class ContextEncoderArgs:
    """The frozen model that reads documents, and how its activations reach the hypernetwork.

    Attributes:
        mode: ``per_layer`` (activation l feeds layer l's adapter) or ``early_exit`` (one stream after
            ``layers`` layers, decoded into every layer).
        layers: ``early_exit`` depth (``None``: a quarter of the encoder's layers).
        model: a separate frozen context encoder (hub name, local dir or packaged alias; any width and depth): a
            causal LM, or a vision-language model whose language model reads the text contexts in training and
            images at evaluation (``internalize_images``). ``None``: the base model itself. The data module must
            tokenize contexts with this encoder's tokenizer (its ``encoder_model`` argument).
        layer_map: with ``per_layer`` and an encoder of another depth, which encoder activation feeds which base
            layer: ``even`` (spread over the encoder), ``nearest`` (same relative depth), ``first`` (the first L
            activations, the reference's Gemma-3-4b -> Gemma-2-2b setting) or a list of encoder layer ids, one per
            base layer (see ``lora_hyper.encoders.layer_map``).
        chunk_length: chunk length used by ``internalize`` (``None``: the encoder's native window).
        pack_chunks: in training, encode a batch's chunks in length-sorted slices, each cut to its longest chunk
            (as ``internalize`` does), instead of one pass padded to the batch's longest chunk: the NIAH recipes'
            batches are 2.6-3.6x padding otherwise. ``False``: one padded pass (fewer, larger kernels).
    """

    mode: str = field(default="per_layer", metadata=_flat("encoder_mode"))
    layers: int | None = field(default=None, metadata=_flat("encoder_layers"))
    model: str | None = field(default=None, metadata=_flat("encoder_model"))
    layer_map: str | list[int] = field(default="even", metadata=_flat("encoder_layer_map"))
    chunk_length: int | None = None
    pack_chunks: bool = True

    def __post_init__(self) -> None:
        _choice("encoder mode", self.mode, ENCODER_MODES)
        positive(self.layers, "encoder layers")
        positive(self.chunk_length, "chunk_length")
        if isinstance(self.layer_map, str) and self.layer_map not in LAYER_MAPS:
            raise InputError(
                f"Unknown encoder layer_map {self.layer_map!r}: use one of {', '.join(map(repr, LAYER_MAPS))} or a "
                "list of encoder layer ids."
            )
        if not isinstance(self.layer_map, str):
            object.__setattr__(self, "layer_map", list(self.layer_map))


@dataclass(frozen=True)
class PerceiverArgs:
    """The Doc-to-LoRA hypernetwork: a Perceiver over the context activations, then per-layer heads.

    Attributes:
        latent_dim: Perceiver latent width (reference 512).
        n_latents: learned latent queries (reference 8 main, 208 NIAH).
        n_blocks: Perceiver blocks (reference 9 main, 8 NIAH).
        n_heads: attention heads.
        mlp_ratio: SwiGLU hidden width as a multiple of ``latent_dim``.
        self_attention: self-attention among latents in every Perceiver block.
        head_hidden_ratio: per-layer residual MLP width as a multiple of ``latent_dim``.
        bias_rank: rank of the learned context-free bias adapter (``None``: the LoRA rank; 0: none).
        head_init: ``reference`` (small heads, std ``0.5/sqrt(latent + (d_in+d_out)*r)``) or ``fan_in``.
        chunk_gate: a learned per-chunk relevance gate multiplied into A (its mean is logged as ``chunk_gate``).
        gate_lr_multiplier: learning-rate multiplier of the gate's parameters (a warm start at a low learning
            rate needs a fast gate: it must move its logit by several units).
        gate_start_step: optimizer step from which the gate learns; before it the gate stays at its initial,
            open value (zero gradient). A fast gate trained from step 0 can shut every chunk, needle included,
            before the hypernetwork has learned to read, and a shut gate passes no gradient back. With
            ``loss.read_loss`` set it counts from the step the hypernetwork reads.
    """

    latent_dim: int = 256
    n_latents: int = 32
    n_blocks: int = 2
    n_heads: int = 4
    mlp_ratio: float = 2.0
    self_attention: bool = True
    head_hidden_ratio: float = 1.0
    bias_rank: int | None = None
    head_init: str = "reference"
    chunk_gate: bool = False
    gate_lr_multiplier: float = 1.0
    gate_start_step: int = 0

    def __post_init__(self) -> None:
        for name in ("latent_dim", "n_latents", "n_blocks", "n_heads"):
            positive(getattr(self, name), name)
        _choice("head_init", self.head_init, HEAD_INITS)
        _non_negative(self, "gate_lr_multiplier", "gate_start_step")
        if self.bias_rank is not None:
            _non_negative(self, "bias_rank")

    def hypernet_config(self) -> dict[str, Any]:
        """The fields that size ``DocToLoRAHypernetConfig`` (all but the training-only gate settings)."""
        training_only = ("gate_lr_multiplier", "gate_start_step")
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in training_only
        }


@dataclass(frozen=True)
class DocLossArgs:
    """The Doc-to-LoRA objective and the L1 penalty on the generated factors.

    Attributes:
        objective: ``ce`` (gold answers) or ``distill`` (teacher = the base with the document in the prompt).
        distill_top_k: teacher tokens kept per answer position in ``distill``.
        label_smoothing: label smoothing of the ``ce`` objective.
        l1_weight: weight of the reference's L1 penalty on the generated factors (``mean|A| + mean|B|`` of each
            document's combined adapter, averaged over modules and documents; reference NIAH: 1.5 Gemma, 0.5
            Qwen3-4B, 2.0 Mistral; QA 0.1). It silences filler chunks, so sums of many chunks stay sane.
        l1_start_step: optimizer step at which the L1 penalty starts (0: from the first step, as the reference).
        l1_ramp_steps: steps over which the L1 weight then rises linearly to ``l1_weight`` (0: at once). On small
            CPU batches at lr 5e-4, L1 from step 0 drives A to zero before the answer's gradient can grow B (the
            chunk path stays dead, only the bias block learns); starting it once the needle is read avoids that.
        read_loss: 0 (off), or the training objective below which the hypernetwork is taken to read documents:
            the first optimizer step at which the mean objective of the last ``read_window`` batches falls below
            it. The L1 penalty and the chunk gate then wait for that step, and ``l1_start_step`` and
            ``perceiver.gate_start_step`` count from it. When a run leaves its plateau varies with the seed (from
            ~300 steps to never within 800), so fixed steps start the gate too early at one seed and too late at
            another; the step reached is logged as ``train/read_step`` and saved in checkpoints.
        read_window: batches averaged for ``read_loss``.
    """

    objective: str = "ce"
    distill_top_k: int = 16
    label_smoothing: float = 0.0
    l1_weight: float = 0.0
    l1_start_step: int = 0
    l1_ramp_steps: int = 0
    read_loss: float = 0.0
    read_window: int = 20

    def __post_init__(self) -> None:
        _choice("objective", self.objective, D2L_OBJECTIVES)
        positive(self.distill_top_k, "distill_top_k")
        positive(self.read_window, "read_window")
        _non_negative(self, "label_smoothing", "l1_weight", "l1_start_step", "l1_ramp_steps", "read_loss")


# ---------------------------------------------------------------------------------------------- Text-to-LoRA
@dataclass(frozen=True)
class TaskEncoderArgs:
    """The frozen sentence encoder that embeds task descriptions.

    Attributes:
        model: sentence-embedding model (hub name or directory), ``all-minilm-l6-v2`` (packaged), or ``base``
            (last-token pooling of the base LLM).
        pooling: ``cls``, ``mean`` or ``last`` (``None``: ``mean``; ``last`` for ``base``).
        train_layers: train the encoder's top this-many transformer layers with the hypernetwork (0: frozen,
            embeddings cached); the trained layers ship inside the saved model.
        lr_multiplier: learning rate of those layers relative to ``optim.lr`` (fine-tuning a pretrained encoder
            wants a far smaller step than a freshly initialised hypernetwork).
    """

    model: str = field(default=DEFAULT_ENCODER, metadata=_flat("task_encoder"))
    pooling: str | None = field(default=None, metadata=_flat("task_encoder_pooling"))
    train_layers: int = 0
    lr_multiplier: float = 0.05

    def __post_init__(self) -> None:
        if self.pooling is not None:
            _choice("task encoder pooling", self.pooling, POOLINGS)
        _non_negative(self, "train_layers", "lr_multiplier")
        if self.train_layers and self.model == BASE_ENCODER:
            raise InputError(
                "task_encoder.train_layers needs a sentence encoder: the 'base' task encoder is the frozen base "
                "model; set train_layers: 0 or pick a sentence-embedding model."
            )


@dataclass(frozen=True)
class MLPArgs:
    """The Text-to-LoRA hypernetwork: an MLP trunk over (task, layer, module type) and output heads.

    Attributes:
        head_size: ``L`` (A and B at once), ``M`` (one head shared by A and B) or ``S`` (one rank row at a time).
        latent: trunk width (a multiple of 4).
        head_in: width of the hidden state read by the heads.
        head_multiplier: factor on the heads' weight output. ``None`` picks it by objective: ``1/sqrt(head_in)``
            for SFT (a head step then moves the generated LoRA about as far as a step on LoRA weights would) and
            ``1.0`` for reconstruction, whose (z-scored) targets are of order 1: at ``1/sqrt(head_in)`` it stalls
            (benchmarks/results/t2l_head_multiplier.json).
        dropout: dropout inside the trunk.
    """

    head_size: str = "L"
    latent: int = 128
    head_in: int = 512
    head_multiplier: float | None = None
    dropout: float = 0.05

    def __post_init__(self) -> None:
        _choice("head_size", self.head_size, HEAD_SIZES)
        if self.latent < 4 or self.latent % 4:
            raise InputError(f"latent must be a positive multiple of 4, got {self.latent!r}.")
        positive(self.head_in, "head_in")
        _non_negative(self, "dropout")


@dataclass(frozen=True)
class TaskLossArgs:
    """The Text-to-LoRA objective: SFT through the frozen base, or reconstruction of a library of adapters.

    Attributes:
        objective: ``sft`` (LM loss through the base) or ``reconstruction`` (L1 to a library of adapters).
        label_smoothing: label smoothing of the SFT cross-entropy.
        l2_weight: weight of the ``mean A^2 + mean B^2`` penalty on generated factors (SFT).
        neftune_alpha: NEFTune noise on input embeddings during SFT training (0: off).
        reconstruction_mode: ``factors`` (L1 on A and B) or ``delta`` (L1 on B @ A).
        zscore: regress z-scores of the library's factors (statistics saved with the model).
    """

    objective: str = "sft"
    label_smoothing: float = 0.1
    l2_weight: float = 1e-3
    neftune_alpha: float = 0.0
    reconstruction_mode: str = "factors"
    zscore: bool = False

    def __post_init__(self) -> None:
        _choice("objective", self.objective, T2L_OBJECTIVES)
        _choice("reconstruction_mode", self.reconstruction_mode, RECONSTRUCTION_MODES)
        _non_negative(self, "label_smoothing", "l2_weight", "neftune_alpha")


# ---------------------------------------------------------------------------------------------- plain LoRA
@dataclass(frozen=True)
class FinetuneLoRAArgs(LoRAArgs):
    """Trainable adapters: which modules get them, their rank and scale.

    Attributes:
        targets: module names that get adapters (found by name suffix in every layer).
        rank: LoRA rank.
        alpha: LoRA alpha.
        rslora: scale ``alpha / sqrt(rank)`` (as Text-to-LoRA) instead of ``alpha / rank``.
    """

    rslora: bool = True


# ---------------------------------------------------------------------------------------------- plumbing
def arg_groups(cls: type) -> dict[str, type]:
    """The ``__init__`` parameters of ``cls`` typed with an argument group: ``{name: dataclass}``."""
    hints = typing.get_type_hints(cls.__init__)
    return {name: hint for name, hint in hints.items() if dataclasses.is_dataclass(hint)}


def resolve_group(name: str, value: Any, default: Any) -> Any:
    """Group ``name`` of an ``__init__`` call: ``None`` -> ``default``, an instance as is, a dict -> ``default`` with
    those fields replaced (the module's other defaults kept, as a partial group in a recipe)."""
    kind = type(default)
    if value is None:
        return default
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        names = [f.name for f in dataclasses.fields(kind)]
        for key in value:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (its fields: {', '.join(names)})"
                raise InputError(f"{name} has no field {key!r}{hint}")
        return dataclasses.replace(default, **value)
    raise InputError(f"{name} must be {kind.__name__} or a dict of its fields, got {type(value).__name__}.")


def resolve_groups(module: Any, **given: Any) -> None:
    """Set every argument group of ``module`` as an attribute (see :func:`resolve_group`); defaults come from the
    signature of ``type(module).__init__``."""
    params = inspect.signature(type(module).__init__).parameters
    for name, value in given.items():
        setattr(module, name, resolve_group(name, value, params[name].default))


def flat_names(group: type) -> dict[str, str]:
    """``{flat hyperparameter name: field name}`` of a group (checkpoints written before the groups)."""
    return {f.metadata.get("flat", f.name): f.name for f in dataclasses.fields(group)}


def from_flat(cls: type, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """``__init__`` arguments of ``cls`` from saved hyperparameters in either layout.

    Flat keys of checkpoints written before the groups (``lr``, ``rank``, ``latent_dim``, ``encoder_mode``, ...)
    move into their groups; grouped values pass through; keys ``cls`` does not take (``_class_path``,
    ``_instantiator``) are dropped. A flat ``None`` where the group's default is not ``None`` meant "the default"
    (``targets``), so it is left out.
    """
    params = inspect.signature(cls.__init__).parameters
    groups = arg_groups(cls)
    out = {
        k: v
        for k, v in hparams.items()
        if k in params and k != "self" and (k not in groups or isinstance(v, Mapping) or v is None)
    }
    for name, group in groups.items():
        moved = dict(out.get(name) or {})
        defaults = params[name].default
        for flat, field_name in flat_names(group).items():
            value = hparams.get(flat, dataclasses.MISSING)
            if value is dataclasses.MISSING or (flat in groups and isinstance(value, Mapping)):
                continue  # absent, or the group itself (a grouped checkpoint)
            if value is None and getattr(defaults, field_name) is not None:
                continue
            moved.setdefault(field_name, value)
        if moved:
            out[name] = moved
    return out


def is_grouped(cls: type, hparams: Mapping[str, Any]) -> bool:
    """Whether saved hyperparameters are already in the grouped layout (every key an argument of ``cls``, or
    private to LightningCLI)."""
    params = inspect.signature(cls.__init__).parameters
    return all(k in params or k.startswith("_") for k in hparams)


def legacy_key(cls: type, key: str) -> str | None:
    """Where a flat argument of the old layout lives now (``"lr"`` -> ``"optim.lr"``), ``None`` if it is no such
    key."""
    for name, group in arg_groups(cls).items():
        field_name = flat_names(group).get(key)
        if field_name is not None and key != name:
            return f"{name}.{field_name}"
    return None
