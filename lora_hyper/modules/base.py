"""What every hypernetwork LightningModule shares: the frozen base, the LoRA LM step, optimiser, logging, checkpoints."""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from lora_hyper.base_model import load_base_model
from lora_hyper.lora import LoRABatch, apply_lora
from lora_hyper.losses import answer_window, per_sample_ce
from lora_hyper.modules.args import SCHEDULES, OptimArgs, RuntimeArgs, from_flat, is_grouped, resolve_groups
from lora_hyper.validation import InputError


def _contiguous_input(module: torch.nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the module's first input as a contiguous tensor (a no-op when it already is)."""
    if not args or not isinstance(args[0], Tensor):
        return None
    return (args[0].contiguous(), *args[1:])


def warmup_schedule(total_steps: int, warmup: float | int, kind: str = "cosine", min_ratio: float = 0.0):
    """LR multiplier: linear warm-up over ``warmup`` steps (or that fraction of ``total_steps`` when < 1),
    then ``cosine`` / ``linear`` decay to ``min_ratio``, or ``constant``."""
    if kind not in SCHEDULES:
        raise ValueError(f"Unknown schedule {kind!r}: use one of {SCHEDULES}.")
    total = max(int(total_steps), 1)
    warm = int(warmup * total) if isinstance(warmup, float) and warmup < 1 else int(warmup)

    def fn(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total - warm))
        decay = 0.5 * (1 + math.cos(math.pi * progress)) if kind == "cosine" else 1 - progress
        return min_ratio + (1 - min_ratio) * decay

    return fn


class LoRATrainingModule(L.LightningModule):
    """Base of every training module: a frozen causal LM (``self.base_model``) and trainable parts that produce
    LoRA adapters for it (a hypernetwork in ``DocToLoRAModule``/``TextToLoRAModule``, the adapters themselves in
    ``LoRAFinetuneModule``).

    Subclasses build their trainable parts in ``configure_model`` and implement ``training_step``.
    Only parameters with ``requires_grad`` are optimised; frozen children are left out of checkpoints and
    restored from the loaded base model, so a checkpoint holds what training changed.

    Arguments are a few top-level values and argument groups (``lora_hyper.modules.args``): every subclass takes
    ``optim`` (:class:`OptimArgs`) and ``runtime`` (:class:`RuntimeArgs`) plus its own groups, and passes them all
    to :meth:`set_arguments` at the end of its ``__init__``.

    Args:
        base_model: hub name, local directory or ``"smollm2-135m-instruct"``.
        init_from: start the hypernetwork from these weights (a Lightning ``.ckpt``, a saved model directory or
            a shipped name) with a fresh optimiser and schedule; a ``--ckpt_path`` resume still wins.
    """

    optim: OptimArgs
    runtime: RuntimeArgs
    # FSDP2 (Lightning's ModelParallelStrategy) parallelises nothing by itself: a subclass whose configure_model
    # shards its trainable part under ``self.device_mesh`` sets this; the others refuse the strategy in setup()
    shards_under_device_mesh: bool = False
    # whether training reads the batches' task descriptions (a data module's resume check then compares the
    # description settings too); plain LoRA fine-tuning does not
    reads_descriptions: bool = True

    def __init__(self, base_model: str = "smollm2-135m-instruct", init_from: str | None = None) -> None:
        super().__init__()
        if not isinstance(base_model, str) or not base_model.strip():
            raise InputError(
                f"base_model must be a hub name, a local directory or an alias, got {base_model!r}."
            )
        self.base_model_name = base_model
        self.init_from = init_from
        self.base_model: torch.nn.Module | None = None
        self.tokenizer: Any = None
        self._strict_before_sharding: bool | None = None  # see setup()

    def set_arguments(self, **groups: Any) -> None:
        """Resolve the argument groups of ``__init__`` into attributes (``self.optim``, ``self.lora``, ...: ``None``
        or a dict -> the signature's default with those fields replaced) and save the hyperparameters
        (LightningCLI's config, or the ``__init__`` arguments) with every group as a plain dict, so checkpoints
        load with ``weights_only=True`` and rebuild the module.

        Call at the end of a subclass ``__init__`` with every group (``self.set_arguments(optim=optim, ...)``)."""
        resolve_groups(self, **groups)
        frame = inspect.currentframe().f_back  # the subclass __init__: Lightning collects its arguments
        self.save_hyperparameters(frame=frame)
        plain = {name: dataclasses.asdict(getattr(self, name)) for name in groups}
        self.save_hyperparameters({**dict(self.hparams), **plain}, frame=frame)

    @classmethod
    def arguments_from_hparams(cls, hparams: dict[str, Any]) -> dict[str, Any]:
        """``__init__`` arguments from saved hyperparameters, grouped or in the flat layout written before the
        argument groups (see :func:`lora_hyper.modules.args.from_flat`)."""
        return from_flat(cls, hparams)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Lightning's ``load_from_checkpoint``; checkpoints written before the argument groups (flat ``lr``,
        ``rank``, ...) load too: their hyperparameters are moved into the groups first."""
        if isinstance(checkpoint_path, (str, Path)) and Path(checkpoint_path).is_file():
            saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True).get("hyper_parameters")
            if saved and not is_grouped(cls, saved):
                kwargs = {**cls.arguments_from_hparams(saved), **kwargs}
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def setup(self, stage: str) -> None:
        """Under ModelParallelStrategy: load checkpoints non-strictly (see below), and refuse to fit where nothing
        is sharded (each process would train its own copy)."""
        from lightning.pytorch.strategies import ModelParallelStrategy

        strategy = self.trainer.strategy if self._trainer is not None else None
        sharding = isinstance(strategy, ModelParallelStrategy)
        if sharding and self._strict_before_sharding is None:
            # checkpoints leave the frozen weights out, and this strategy loads a checkpoint into the module before
            # on_load_checkpoint can refill them: it must not require them (on_load_checkpoint checks the trained
            # keys against the list the checkpoint records); teardown() restores the setting
            self._strict_before_sharding = self.strict_loading
            self.strict_loading = False
        if sharding and stage == "fit" and not self.shards_under_device_mesh:
            raise InputError(
                f"{type(self).__name__} does not shard under ModelParallelStrategy (FSDP2), so every process "
                "would train its own unsynchronised copy: use DDP (recipes/strategies/ddp.yaml)."
            )

    def teardown(self, stage: str) -> None:
        """Give back the ``strict_loading`` that :meth:`setup` lifted for ModelParallelStrategy."""
        if self._strict_before_sharding is not None:
            self.strict_loading, self._strict_before_sharding = self._strict_before_sharding, None

    def shard_under_device_mesh(self) -> None:
        """Under ModelParallelStrategy (``self.device_mesh`` set), ``fully_shard`` the hypernetwork once; call from
        ``configure_model``, also when the hypernetwork was built earlier (outside the trainer)."""
        from lora_hyper.strategies import is_fsdp2, shard_fsdp2

        hypernet = getattr(self, "hypernet", None)
        if self.device_mesh is not None and hypernet is not None and not is_fsdp2(hypernet):
            shard_fsdp2(hypernet, self.device_mesh)

    # ------------------------------------------------------------------ model
    def load_base(self) -> None:
        """Load the frozen base model and tokenizer once (call from ``configure_model``)."""
        if self.base_model is not None:
            return
        device = self.device if self.device.type != "meta" else None
        self.base_model, self.tokenizer = load_base_model(
            self.base_model_name, self.runtime.attn_implementation, self.runtime.base_dtype, device=device
        )

    def warm_start(self) -> None:
        """Load ``init_from`` into the freshly built hypernetwork (call at the end of ``configure_model``).

        Runs before Lightning restores a ``ckpt_path``, so an exact resume still overrides it."""
        if self.init_from:
            from lora_hyper.modules.init_from import read_weights

            self.warm_start_from(read_weights(self.init_from))

    def warm_start_from(self, stored: Any) -> None:
        """Fill the hypernetwork from the ``init_from`` weights read once (a ``StoredWeights``); subclasses with
        more trained parts fill those from the same read."""
        from lora_hyper.modules.init_from import load_into

        load_into(self.hypernet, stored)

    def frozen_models(self) -> list[torch.nn.Module]:
        """Frozen parts that stay in eval mode during fit (no dropout): the base model and every child whose
        parameters are all frozen; subclasses add frozen models they keep outside the module tree."""
        frozen = [self.base_model] if self.base_model is not None else []
        for child in self.children():
            params = list(child.parameters())
            if params and not any(p.requires_grad for p in params) and child is not self.base_model:
                frozen.append(child)
        return frozen

    def train(self, mode: bool = True) -> LoRATrainingModule:
        """Train mode for what trains; the frozen parts (:meth:`frozen_models`) always stay in eval mode."""
        super().train(mode)
        for frozen in self.frozen_models():
            frozen.eval()
        return self

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def no_weight_decay_parameters(self) -> set[int]:
        """Ids of parameters exempt from weight decay: those the hypernetwork names in ``no_weight_decay()``."""
        hypernet = getattr(self, "hypernet", None)
        names = hypernet.no_weight_decay() if hasattr(hypernet, "no_weight_decay") else set()
        return {id(p) for n, p in hypernet.named_parameters() if n in names} if names else set()

    def lr_multipliers(self) -> dict[int, float]:
        """Per-parameter learning-rate multipliers by ``id`` (default none); the schedule scales every group."""
        return {}

    def lm_logits(
        self,
        lora: LoRABatch,
        batch: dict[str, Tensor],
        adapter_index: Tensor | None = None,
        logits_to_keep: int = 0,
    ) -> Tensor:
        """Logits of the frozen base with ``lora`` applied per row (gradients flow into the factors); only the
        last ``logits_to_keep`` positions' when given and the model supports it (0: every position)."""
        kwargs = {"logits_to_keep": logits_to_keep} if logits_to_keep and self._keeps_logits() else {}
        head = getattr(self.base_model, "get_output_embeddings", lambda: None)() if kwargs else None
        # The kept positions reach the LM head as a strided view, which CPU matmul serves by expanding the
        # vocabulary-sized weight per row (~3x the time, forward and backward); a contiguous copy avoids it.
        handle = head.register_forward_pre_hook(_contiguous_input) if head is not None else None
        try:
            with apply_lora(self.base_model, lora, adapter_index=adapter_index):
                logits = self.base_model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs
                ).logits
        finally:
            if handle is not None:
                handle.remove()
        return logits[:, -logits_to_keep:] if logits_to_keep else logits

    def _keeps_logits(self) -> bool:
        """Whether the base model's forward takes ``logits_to_keep`` (every recent transformers causal LM)."""
        return "logits_to_keep" in inspect.signature(self.base_model.forward).parameters

    def answer_logits_and_labels(
        self, lora: LoRABatch, batch: dict[str, Tensor], adapter_index: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Logits and labels of the positions that predict answer tokens (the trailing window that holds them
        all): the LM head, a fifth of a small model's forward, skips the prompts."""
        keep = answer_window(batch["labels"])
        return self.lm_logits(lora, batch, adapter_index, logits_to_keep=keep), batch["labels"][:, -keep:]

    def lm_loss(
        self,
        lora: LoRABatch,
        batch: dict[str, Tensor],
        adapter_index: Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> Tensor:
        """Per-row answer cross-entropy of the base with ``lora`` applied: ``[rows]``."""
        logits, labels = self.answer_logits_and_labels(lora, batch, adapter_index)
        return per_sample_ce(logits, labels, label_smoothing)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        params = self.trainable_parameters()
        if not params:
            raise RuntimeError("No trainable parameters: was the hypernetwork built in configure_model?")
        optim = self.optim
        exempt = self.no_weight_decay_parameters()
        multipliers = self.lr_multipliers()
        groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {}
        for p in params:
            decays = p.dim() >= 2 and id(p) not in exempt
            groups.setdefault((decays, multipliers.get(id(p), 1.0)), []).append(p)
        optimizer = self.optimizer_class()(
            [
                {"params": ps, "weight_decay": optim.weight_decay if decays else 0.0, "lr": optim.lr * mult}
                for (decays, mult), ps in sorted(groups.items(), key=lambda kv: (not kv[0][0], kv[0][1]))
            ],
            lr=optim.lr,
        )
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 1000
        if not math.isfinite(total):
            total = 100_000
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_schedule(int(total), optim.warmup, optim.schedule)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def optimizer_class(self) -> type[torch.optim.Optimizer]:
        """The optimizer :meth:`configure_optimizers` builds (AdamW; per-task adapter libraries use a row-wise one)."""
        return torch.optim.AdamW

    def on_before_optimizer_step(self, optimizer) -> None:
        grads = [p.grad for p in self.trainable_parameters() if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads])
            )
            self.log("train/grad_norm", norm, on_step=True, prog_bar=False)
        self.log("train/lr", optimizer.param_groups[0]["lr"], on_step=True, prog_bar=False)

    # ------------------------------------------------------------------ checkpoints
    def _frozen_prefixes(self) -> list[str]:
        prefixes = []
        for name, child in self.named_children():
            params = list(child.parameters())
            if params and not any(p.requires_grad for p in params):
                prefixes.append(name + ".")
        return prefixes

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the class path (``lora-hyper export`` dispatches on it, also for modules trained from Python
        rather than LightningCLI) and leave frozen weights out: they come back from the base model on load."""
        checkpoint["lora_hyper_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        state = checkpoint.get("state_dict")
        prefixes = tuple(self._frozen_prefixes())
        if state is None:
            return
        if prefixes:
            state = checkpoint["state_dict"] = {k: v for k, v in state.items() if not k.startswith(prefixes)}
            checkpoint["frozen_prefixes"] = list(prefixes)
        checkpoint["trained_keys"] = sorted(state)  # what a non-strict load (FSDP2) checks against

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Let the data module refuse a resume that would draw other rows (its ``check_resume``, when it has one),
        then refill the frozen weights left out by :meth:`on_save_checkpoint` from the loaded base."""
        datamodule = getattr(self._trainer, "datamodule", None)
        check = getattr(datamodule, "check_resume", None)
        if callable(check):
            check(checkpoint, reads_descriptions=self.reads_descriptions)
        prefixes = tuple(checkpoint.get("frozen_prefixes", ()))
        state = checkpoint.get("state_dict")
        if self._strict_before_sharding is not None:  # loaded non-strictly (see setup()): check it here
            self._check_trained_keys(checkpoint.get("trained_keys", state), prefixes)
        if not prefixes or state is None:
            return
        for k, v in self.state_dict().items():
            if k.startswith(prefixes) and k not in state:
                state[k] = v

    def _check_trained_keys(self, stored: Any, prefixes: tuple[str, ...]) -> None:
        """A strict load's check, for a checkpoint loaded non-strictly: its trained keys are this module's."""
        if not stored:
            return  # a checkpoint from before ``trained_keys`` whose weights the strategy has already taken
        stored = set(stored)
        own = {k for k in self.state_dict() if not (prefixes and k.startswith(prefixes))}
        missing, unexpected = sorted(own - stored), sorted(stored - own)
        if missing or unexpected:
            raise KeyError(
                f"The checkpoint does not fit this module: missing {missing[:3]}, unexpected {unexpected[:3]}."
            )


# The base's former name (the finetune module has no hypernetwork): kept as an alias for one release.
HypernetModule = LoRATrainingModule
