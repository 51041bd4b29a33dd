"""TextToLoRAModule: trains the Text-to-LoRA hypernetwork by SFT through the frozen base or by reconstruction."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from lora_hyper.encoders.task import BASE_ENCODER, TaskEncoder
from lora_hyper.generation import generate_answers
from lora_hyper.hypernets.t2l import T2LHypernetConfig, TextToLoRAHypernet
from lora_hyper.lora import LoRABatch, LoRASpec, align_adapter, load_peft
from lora_hyper.losses import factor_l2, reconstruction_l1
from lora_hyper.modules.args import LoRAArgs, MLPArgs, OptimArgs, RuntimeArgs, TaskEncoderArgs, TaskLossArgs
from lora_hyper.modules.base import LoRATrainingModule
from lora_hyper.validation import InputError


def meta_model(base_model: str) -> torch.nn.Module:
    """The base model's architecture on the meta device (shapes only, no weights read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from lora_hyper.base_model import resolve_model_path

    config = AutoConfig.from_pretrained(resolve_model_path(base_model))
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def default_head_multiplier(objective: str, head_multiplier: float | None) -> float | None:
    """The heads' output factor for ``objective`` when none is given (``None`` -> the config's ``1/sqrt(head_in)``)."""
    if head_multiplier is not None:
        return float(head_multiplier)
    return 1.0 if objective == "reconstruction" else None


class TextToLoRAModule(LoRATrainingModule):
    """Text-to-LoRA: a frozen task encoder + a hypernetwork generating per-description adapters for a frozen LLM.

    A group given in part (a recipe's ``optim: {lr: 1e-3}``, or ``optim={"lr": 1e-3}`` from Python) keeps the
    defaults below for its other fields.

    Args:
        base_model: hub name, local directory or ``"smollm2-135m-instruct"``.
        lora: the generated adapters: targets, rank, alpha (scale ``alpha / sqrt(rank)``, rsLoRA).
        mlp: the hypernetwork: an MLP trunk and its output heads.
        task_encoder: the frozen sentence encoder of task descriptions.
        loss: the objective (SFT or reconstruction) and its penalties.
        optim: AdamW, warm-up and schedule.
        runtime: how the frozen models load (attention kernel, dtype).
        residual_adapter: PEFT adapter directory (e.g. a multi-task LoRA) every generated adapter adds to.
        init_from: start the hypernetwork from these weights (a Lightning ``.ckpt``, a saved model directory or
            a shipped name) with a fresh optimiser and schedule; a ``--ckpt_path`` resume still wins.
    """

    lora: LoRAArgs
    mlp: MLPArgs
    task_encoder: TaskEncoderArgs
    loss: TaskLossArgs

    def __init__(
        self,
        base_model: str = "smollm2-135m-instruct",
        lora: LoRAArgs = LoRAArgs(),
        mlp: MLPArgs = MLPArgs(),
        task_encoder: TaskEncoderArgs = TaskEncoderArgs(),
        loss: TaskLossArgs = TaskLossArgs(),
        optim: OptimArgs = OptimArgs(lr=2.5e-5, weight_decay=0.01, warmup=0.2, schedule="linear"),
        runtime: RuntimeArgs = RuntimeArgs(),
        residual_adapter: str | None = None,
        init_from: str | None = None,
    ) -> None:
        super().__init__(base_model, init_from)
        self.set_arguments(
            lora=lora, mlp=mlp, task_encoder=task_encoder, loss=loss, optim=optim, runtime=runtime
        )
        if (
            self.loss.objective == "reconstruction"
            and residual_adapter
            and self.loss.reconstruction_mode != "delta"
        ):
            raise InputError(
                "residual_adapter with the reconstruction objective needs loss.reconstruction_mode='delta'."
            )
        self.residual_adapter = residual_adapter
        self.head_multiplier = default_head_multiplier(self.loss.objective, self.mlp.head_multiplier)
        self.hypernet: TextToLoRAHypernet | None = None
        self.encoder: TaskEncoder | None = None
        self.spec: LoRASpec | None = None

    # ------------------------------------------------------------------ building
    def configure_model(self) -> None:
        """Build (once) the frozen base (SFT or base-LLM encoder), the task encoder and the hypernetwork."""
        if self.hypernet is not None:
            self.shard_under_device_mesh()  # built before the trainer (e.g. generate_lora): shard it now
            return
        lora, mlp, encoder = self.lora, self.mlp, self.task_encoder
        needs_base = self.loss.objective == "sft" or encoder.model == BASE_ENCODER
        if needs_base:
            self.load_base()
            shapes_from = self.base_model
        else:  # reconstruction: the layer shapes are enough, no weights are read
            shapes_from = meta_model(self.base_model_name)
        spec = LoRASpec(lora.targets, lora.rank, scale=lora.alpha / math.sqrt(lora.rank)).discover(
            shapes_from
        )
        self.spec = spec
        if encoder.model == BASE_ENCODER:
            self.encoder = TaskEncoder(
                BASE_ENCODER, encoder.pooling, model=self.base_model, tokenizer=self.tokenizer
            )
        else:
            device = self.device if self.device.type == "cuda" else None
            self.encoder = TaskEncoder(
                encoder.model, encoder.pooling, device=device, train_layers=encoder.train_layers
            )
            if (
                encoder.train_layers
            ):  # a child module: moved, optimised and checkpointed with the hypernetwork
                self.task_encoder_model = self.encoder.make_trainable()
        residual = None
        if self.residual_adapter:
            residual = align_adapter(load_peft(self.residual_adapter, n_layers=spec.n_layers), spec)
        config = T2LHypernetConfig(
            spec=spec.to_dict(),
            emb_dim=self.encoder.dim,
            latent=mlp.latent,
            head_in=mlp.head_in,
            head_multiplier=self.head_multiplier,
            head_size=mlp.head_size,
            dropout=mlp.dropout,
            output_zscore=self.loss.zscore,
            residual_rank=None if residual is None else residual.rank,
        )
        self.hypernet = TextToLoRAHypernet(config)
        if residual is not None:
            self.hypernet.set_residual(residual)
        self.warm_start()
        if self.loss.zscore:
            self.register_buffer("zscore_fitted", torch.zeros((), dtype=torch.long))
        self.shard_under_device_mesh()

    def warm_start_from(self, stored: Any) -> None:
        """``init_from`` into the hypernetwork, and into the trained task-encoder layers when the source has them
        (the same layers, else an error: weights loaded into a frozen layer would not be saved)."""
        super().warm_start_from(stored)
        from lora_hyper.modules.init_from import task_encoder_state

        state = task_encoder_state(stored)
        if not state:
            return
        if not self.task_encoder.train_layers:
            raise InputError(
                f"init_from={self.init_from!r} has trained task-encoder layers (its hypernetwork reads their "
                f"embeddings): set task_encoder.train_layers to its value, or start from a frozen-encoder model."
            )
        expected = {n for n, p in self.task_encoder_model.named_parameters() if p.requires_grad}
        if set(state) != expected:
            raise InputError(
                f"init_from={self.init_from!r} trained other task-encoder layers than task_encoder.train_layers="
                f"{self.task_encoder.train_layers} trains ({len(state)} tensors, this run {len(expected)}): "
                "use the train_layers it was trained with."
            )
        self.task_encoder_model.load_state_dict(state, strict=False)

    def frozen_models(self) -> list[torch.nn.Module]:
        """Also the partly trained task encoder: it stays in eval mode (no dropout; gradients still flow)."""
        model = getattr(self, "task_encoder_model", None)
        return super().frozen_models() + ([model] if model is not None else [])

    shards_under_device_mesh = True  # configure_model shards the hypernetwork under ModelParallelStrategy

    def setup(self, stage: str) -> None:
        """Refuse FSDP with trained task-encoder layers: the encoder is called outside the sharded forward."""
        super().setup(stage)
        strategy = type(self.trainer.strategy).__name__ if self._trainer is not None else ""
        if self.task_encoder.train_layers and strategy in ("FSDPStrategy", "ModelParallelStrategy"):
            raise InputError(
                f"task_encoder.train_layers with {strategy} is not supported: the task encoder is small, use "
                "DDP (recipes/strategies/ddp.yaml) or task_encoder.train_layers: 0."
            )

    def lr_multipliers(self) -> dict[int, float]:
        """The trained task-encoder layers step at ``task_encoder.lr_multiplier`` times the hypernetwork's rate."""
        model = getattr(self, "task_encoder_model", None)
        if model is None:
            return {}
        return {id(p): float(self.task_encoder.lr_multiplier) for p in model.parameters() if p.requires_grad}

    def _frozen_prefixes(self) -> list[str]:
        """Also the frozen (lower) layers of a partly trained task encoder: they come back from its weights."""
        prefixes = super()._frozen_prefixes()
        model = getattr(self, "task_encoder_model", None)
        if model is not None:
            prefixes += [
                f"task_encoder_model.{n}" for n, p in model.named_parameters() if not p.requires_grad
            ]
            prefixes += [f"task_encoder_model.{n}" for n, _ in model.named_buffers()]
        return prefixes

    def inference_model(self) -> Any:
        """The trained model as a ``TextToLoRA`` (what ``lora-hyper export`` saves); shares the weights."""
        from lora_hyper.api.text_to_lora import TextToLoRA

        return TextToLoRA.from_module(self)

    def _require_built(self) -> TextToLoRAHypernet:
        if self.hypernet is None:
            self.configure_model()
        return self.hypernet  # type: ignore[return-value]

    # ------------------------------------------------------------------ inference API (used by callbacks)
    def embed(self, descriptions: list[str]) -> Tensor:
        """Task embeddings ``[n, E]`` on this module's device (cached for a frozen encoder)."""
        self._require_built()
        return self.encoder.encode(descriptions).to(self.device)  # type: ignore[union-attr]

    @torch.no_grad()
    def generate_lora(self, descriptions: list[str]) -> LoRABatch:
        """One adapter per description (eval mode, no gradients)."""
        hypernet = self._require_built()
        was_training = hypernet.training
        hypernet.eval()
        try:
            return hypernet(self.embed(list(descriptions))).detach()
        finally:
            hypernet.train(was_training)

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        adapters: LoRABatch | None = None,
        system: str | None = None,
        max_new_tokens: int = 32,
        **generate_kwargs: Any,
    ) -> list[str]:
        """Chat-templated greedy answers; prompt ``i`` uses adapter ``i`` (or consecutive groups share one)."""
        if not prompts:
            raise ValueError("generate needs at least one prompt.")
        self.load_base()
        return generate_answers(
            self.base_model,
            self.tokenizer,
            prompts,
            adapters,
            max_new_tokens,
            system=system,
            **generate_kwargs,
        )

    # ------------------------------------------------------------------ objectives
    @contextmanager
    def _neftune(self):
        """Uniform noise ``alpha / sqrt(T * d)`` on the input embeddings while training (NEFTune)."""
        alpha = float(self.loss.neftune_alpha)
        if not (self.training and alpha > 0):
            yield
            return

        def hook(module, args, out):
            mag = alpha / math.sqrt(out.shape[-2] * out.shape[-1])
            return out + torch.empty_like(out).uniform_(-mag, mag)

        handle = self.base_model.get_input_embeddings().register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def sft_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Label-smoothed CE per sample (mean over samples) + ``l2_weight * factor_l2`` of generated factors."""
        hypernet = self._require_built()
        descriptions = list(batch["descriptions"])
        unique = list(dict.fromkeys(descriptions))
        index = None
        if len(unique) < len(descriptions):
            pos = {d: i for i, d in enumerate(unique)}
            index = torch.tensor([pos[d] for d in descriptions], device=self.device)
        generated = hypernet(self.embed(unique), output="generated")
        lora = hypernet.add_residual(generated)
        with self._neftune():
            per_sample = self.lm_loss(lora, batch, index, label_smoothing=float(self.loss.label_smoothing))
        ce = per_sample.mean()
        l2 = factor_l2(generated)
        return ce + float(self.loss.l2_weight) * l2, {"ce": ce.detach(), "factor_l2": l2.detach()}

    def reconstruction_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """L1 between generated and library adapters (z-scored factors, raw factors, or delta W)."""
        hypernet = self._require_built()
        target = align_adapter(batch["target"], hypernet.spec).to(self.device)
        emb = self.embed(list(batch["descriptions"]))
        raw = hypernet(emb, output="raw")
        if self.loss.reconstruction_mode == "factors":
            if target.ranks != raw.ranks:
                raise ValueError(
                    f"Library adapters have ranks {target.ranks} but the hypernetwork generates rank "
                    f"{self.lora.rank}: set lora.rank to match or use loss.reconstruction_mode='delta'."
                )
            loss = reconstruction_l1(raw, hypernet.normalize(target), "factors")
        else:
            loss = reconstruction_l1(hypernet.add_residual(hypernet.denormalize(raw)), target, "delta")
        return loss, {}

    def _step(self, batch: dict[str, Any], stage: str) -> Tensor:
        fn = self.sft_loss if self.loss.objective == "sft" else self.reconstruction_loss
        loss, parts = fn(batch)
        n = len(batch["descriptions"])
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=n)
        for k, v in parts.items():
            self.log(f"{stage}/{k}", v, batch_size=n)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    # ------------------------------------------------------------------ z-score statistics
    def on_fit_start(self) -> None:
        """Fit the z-score statistics on the library once (before the first step; restored on resume)."""
        if not (self.loss.objective == "reconstruction" and self.loss.zscore) or int(self.zscore_fitted):
            return
        self.fit_zscore(self._library())

    def fit_zscore(self, library: LoRABatch) -> None:
        """Store mean/std of ``library`` (one row per task) in the hypernetwork."""
        hypernet = self._require_built()
        hypernet.set_output_stats(align_adapter(library, hypernet.spec).to(self.device))
        self.zscore_fitted.fill_(1)

    def _library(self) -> LoRABatch:
        dm = self.trainer.datamodule if self._trainer is not None else None
        lib = getattr(dm, "library", None)
        if isinstance(lib, LoRABatch):
            return lib
        spec = self._require_built().spec
        adapters = getattr(dm, "adapters", None)
        if isinstance(adapters, dict) and adapters:
            return LoRABatch.cat([align_adapter(a, spec) for a in adapters.values()])
        if dm is None:
            raise ValueError(
                "loss.zscore=True needs the library: call fit_zscore(library) or train with a LoRA-library "
                "DataModule."
            )
        seen: dict[str, LoRABatch] = {}
        for i, batch in enumerate(dm.train_dataloader()):
            for j, name in enumerate(batch["task_names"]):
                seen.setdefault(name, batch["target"].select(j))
            if i >= 512:
                break
        if not seen:
            raise ValueError("The LoRA library is empty: no adapters to fit z-score statistics on.")
        return LoRABatch.cat([align_adapter(v, spec) for v in seen.values()])
