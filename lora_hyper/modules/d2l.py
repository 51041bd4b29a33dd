"""DocToLoRAModule: train a Doc-to-LoRA hypernetwork (CE on answers or top-k context distillation)."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lora_hyper.base_model import native_window
from lora_hyper.encoders.context import ContextEncoder
from lora_hyper.encoders.models import load_context_encoder
from lora_hyper.generation import generate_answers
from lora_hyper.hypernets.d2l import DocToLoRAHypernet, DocToLoRAHypernetConfig, group_sizes
from lora_hyper.internalize import (
    internalize_documents,
    internalize_images,
    length_sorted_slices,
    packed_chunk_loras,
)
from lora_hyper.lora import LoRABatch, LoRASpec
from lora_hyper.losses import factor_l1, mean_by_group, per_sample_ce, topk_distill_per_sample
from lora_hyper.modules.args import (
    ContextEncoderArgs,
    DocLoRAArgs,
    DocLossArgs,
    OptimArgs,
    PerceiverArgs,
    RuntimeArgs,
)
from lora_hyper.modules.base import LoRATrainingModule
from lora_hyper.validation import InputError

# Training slices of packed chunks end where the next chunk is more than 10% longer than the slice's shortest.
TRAIN_PACK_PADDING = 0.1


def consecutive_groups(doc_index: Tensor, n_docs: int) -> bool:
    """True when rows are ``k`` questions of document 0, then ``k`` of document 1, ... (no index copy needed)."""
    rows = doc_index.numel()
    if rows % n_docs:
        return False
    expected = torch.arange(n_docs, device=doc_index.device).repeat_interleave(rows // n_docs)
    return torch.equal(doc_index, expected)


class DocToLoRAModule(LoRATrainingModule):
    """Doc-to-LoRA training: frozen base + frozen context encoder + trainable Perceiver hypernetwork.

    Consumes the Doc-to-LoRA batch contract of ``data_modules/collate.py``; only the hypernetwork trains. A group
    given in part (a recipe's ``optim: {lr: 1e-3}``, or ``optim={"lr": 1e-3}`` from Python) keeps the defaults
    below for its other fields.

    Args:
        base_model: hub name, local directory or ``"smollm2-135m-instruct"``.
        lora: the generated adapters: targets, rank, scale, rank budget.
        encoder: the frozen context encoder and how its activations feed the hypernetwork.
        perceiver: the hypernetwork's sizes and its chunk gate.
        loss: the objective and the L1 penalty on the generated factors.
        optim: AdamW, warm-up and schedule.
        runtime: how the frozen models load (attention kernel, dtype).
        system_prompt: system message of chunk wrappers and questions (``""``: an empty one, as the
            reference; ``None``: the chat template's default). The data module must use the same.
        init_from: start the hypernetwork from these weights (a Lightning ``.ckpt``, a saved model directory or
            a shipped name) with a fresh optimiser and schedule; a ``--ckpt_path`` resume still wins.
    """

    lora: DocLoRAArgs
    encoder: ContextEncoderArgs
    perceiver: PerceiverArgs
    loss: DocLossArgs

    def __init__(
        self,
        base_model: str = "smollm2-135m-instruct",
        lora: DocLoRAArgs = DocLoRAArgs(),
        encoder: ContextEncoderArgs = ContextEncoderArgs(),
        perceiver: PerceiverArgs = PerceiverArgs(),
        loss: DocLossArgs = DocLossArgs(),
        optim: OptimArgs = OptimArgs(lr=1e-4, weight_decay=0.01, warmup=0.1, schedule="cosine"),
        runtime: RuntimeArgs = RuntimeArgs(),
        system_prompt: str | None = "",
        init_from: str | None = None,
    ) -> None:
        super().__init__(base_model, init_from)
        self.set_arguments(
            lora=lora, encoder=encoder, perceiver=perceiver, loss=loss, optim=optim, runtime=runtime
        )
        self.system_prompt = system_prompt
        self.encoder_tokenizer: Any = None
        self._ctx_ids_checked = False
        self.hypernet: DocToLoRAHypernet | None = None
        self.context_encoder: ContextEncoder | None = None
        # The reading trigger (``loss.read_loss``): recent training objectives and the step it fired at.
        self._recent_objectives: collections.deque[float] = collections.deque(maxlen=self.loss.read_window)
        self.read_step: int | None = None

    shards_under_device_mesh = True  # configure_model shards the hypernetwork under ModelParallelStrategy

    # ------------------------------------------------------------------ model
    def configure_model(self) -> None:
        """Load the frozen base (and encoder), build the hypernetwork; shard it with FSDP2 under a device mesh."""
        if self.hypernet is not None:
            self.shard_under_device_mesh()  # built before the trainer (e.g. internalize): shard it now
            return
        self.load_base()
        lora, enc = self.lora, self.encoder
        spec = LoRASpec(lora.targets, lora.rank, lora.resolved_scale).discover(self.base_model)
        per_layer = enc.mode == "per_layer"
        n_out = spec.n_layers if per_layer else None
        if enc.model is None:
            encoder = ContextEncoder(self.base_model, enc.mode, enc.layers, n_out, enc.layer_map)
            # Shared with the base: keep it out of the module tree so the weights are not registered twice.
            object.__setattr__(self, "context_encoder", encoder)
            self.encoder_tokenizer = self.tokenizer
        else:
            device = self.device if self.device.type != "meta" else None
            self.context_encoder, self.encoder_tokenizer = load_context_encoder(
                enc.model,
                enc.mode,
                enc.layers,
                n_out,
                enc.layer_map,
                self.runtime.attn_implementation,
                self.runtime.base_dtype,
                device,
            )
        config = DocToLoRAHypernetConfig(
            input_dim=self.context_encoder.hidden_size,
            per_layer_input=per_layer,
            **self.perceiver.hypernet_config(),
        )
        self.hypernet = DocToLoRAHypernet(config, spec)
        self.warm_start()
        self.shard_under_device_mesh()

    def inference_model(self) -> Any:
        """The trained model as a ``DocToLoRA`` (what ``lora-hyper export`` saves); shares the weights."""
        from lora_hyper.api.doc_to_lora import DocToLoRA

        return DocToLoRA.from_module(self)

    def lr_multipliers(self) -> dict[int, float]:
        """The chunk gate learns at ``gate_lr_multiplier`` times the learning rate."""
        gate = getattr(self.hypernet, "gate", None)
        multiplier = float(self.perceiver.gate_lr_multiplier)
        if gate is None or multiplier == 1.0:
            return {}
        return {id(p): multiplier for p in gate.parameters()}

    def frozen_models(self) -> list[torch.nn.Module]:
        """The base, frozen children, and the context encoder's model (kept outside the tree when shared)."""
        encoder_model = getattr(self.context_encoder, "model", None)
        return super().frozen_models() + ([encoder_model] if encoder_model is not None else [])

    @property
    def spec(self) -> LoRASpec:
        if self.hypernet is None:
            raise RuntimeError("The hypernetwork is not built yet: call configure_model() first.")
        return self.hypernet.spec

    @property
    def native_window(self) -> int:
        return native_window(self.base_model)

    # what DocToLoRA.from_module reads (and the defaults of internalize)
    @property
    def encoder_model(self) -> str | None:
        return self.encoder.model

    @property
    def chunk_length(self) -> int | None:
        return self.encoder.chunk_length

    @property
    def rank_budget(self) -> int | None:
        return self.lora.rank_budget

    # ------------------------------------------------------------------ training
    def chunk_adapters(self, batch: dict[str, Any]) -> LoRABatch:
        """One rank-``r`` adapter per chunk of a Doc-to-LoRA batch, no bias: chunks encoded in length-sorted
        slices (``encoder.pack_chunks``) or in one pass padded to the longest."""
        ids, mask = batch["ctx_input_ids"], batch["ctx_attention_mask"]
        if not self._ctx_ids_checked:
            self.check_context_ids(ids)
        if not self.encoder.pack_chunks or ids.shape[0] < 2:
            feats, fmask = self.context_encoder(ids, mask)
            return self.hypernet(feats, fmask, join=False)
        slices = length_sorted_slices(mask.sum(1).tolist(), ids.shape[0], max_padding=TRAIN_PACK_PADDING)
        return packed_chunk_loras(self.context_encoder, self.hypernet, ids, mask, slices, ids.device)

    def adapters(self, batch: dict[str, Any]) -> LoRABatch:
        """One adapter per document of a Doc-to-LoRA batch: its chunks' adapters summed, plus the bias block."""
        return self.hypernet.join(self.chunk_adapters(batch), batch["ctx_doc_index"])

    def losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """``loss`` (objective + L1), ``qa_loss``, ``l1`` and ``adapter_norm`` of one batch."""
        chunks = self.chunk_adapters(batch)
        lora = self.hypernet.join(chunks, batch["ctx_doc_index"])
        qa = batch["qa_doc_index"]
        index = None if consecutive_groups(qa, lora.batch_size) else qa
        logits, labels = self.answer_logits_and_labels(lora, batch, adapter_index=index)
        if self.loss.objective == "ce":
            per_row = per_sample_ce(logits, labels, self.loss.label_smoothing)
        else:
            if "teacher_input_ids" not in batch:
                raise ValueError(
                    "objective 'distill' needs teacher_* rows: set with_teacher=True on the data module."
                )
            with torch.no_grad():
                teacher = self.base_model(
                    input_ids=batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"]
                ).logits
            per_row = topk_distill_per_sample(
                logits, labels, teacher, batch["teacher_labels"], self.loss.distill_top_k
            )
        qa_loss = mean_by_group(per_row, qa)
        l1 = factor_l1(chunks, self.hypernet.bias_lora(1), group_sizes(batch["ctx_doc_index"]))
        weight = self.current_l1_weight()
        loss = qa_loss + weight * l1 if weight else qa_loss
        out = {
            "loss": loss,
            "qa_loss": qa_loss.detach(),
            "l1": l1.detach(),
            "adapter_norm": lora.detach().delta_norms().mean(),
        }
        if self.hypernet.last_gate is not None:
            out["chunk_gate"] = self.hypernet.last_gate.mean()
        return out

    def check_context_ids(self, ctx_input_ids: Tensor) -> None:
        """Context ids must come from the encoder's tokenizer: ids past its vocabulary are a clear error (checked
        on the first batch only)."""
        embeddings = self.context_encoder.model.get_input_embeddings()
        top = int(ctx_input_ids.max()) if ctx_input_ids.numel() else 0
        if top >= embeddings.num_embeddings:
            raise InputError(
                f"context token id {top} is past the encoder's vocabulary ({embeddings.num_embeddings}): the data "
                f"module tokenized contexts for another model; set its encoder_model to {self.encoder_model!r}."
            )
        self._ctx_ids_checked = True

    def current_l1_weight(self) -> float:
        """The L1 weight at this optimizer step (the reading trigger, ``l1_start_step`` and ``l1_ramp_steps``
        applied); outside training the full weight."""
        loss = self.loss
        if not loss.l1_weight:
            return 0.0
        if self._trainer is None:
            return loss.l1_weight
        start = self.schedule_start(loss.l1_start_step)
        if start is None or self.global_step < start:
            return 0.0
        if not loss.l1_ramp_steps:
            return loss.l1_weight
        return loss.l1_weight * min(1.0, (self.global_step - start) / loss.l1_ramp_steps)

    def schedule_start(self, offset: int) -> int | None:
        """The optimizer step a scheduled start (``l1_start_step``, ``gate_start_step``) means: ``offset`` itself,
        or with ``loss.read_loss`` set, ``offset`` steps after the hypernetwork reads (``None`` until then)."""
        if not self.loss.read_loss:
            return offset
        return None if self.read_step is None else self.read_step + offset

    def update_reading(self, objective: float) -> None:
        """Record one training batch's objective; fire the reading trigger the first time the mean of the last
        ``read_window`` falls below ``loss.read_loss``."""
        if not self.loss.read_loss or self.read_step is not None:
            return
        self._recent_objectives.append(objective)
        window = self._recent_objectives
        if len(window) == window.maxlen and sum(window) / len(window) < self.loss.read_loss:
            self.read_step = self.global_step

    def _log_all(self, stage: str, out: dict[str, Tensor], batch: dict[str, Any]) -> None:
        n_docs = int(batch["ctx_doc_index"].max()) + 1
        on_step = stage == "train"
        self.log(
            f"{stage}/loss",
            out["loss"].detach(),
            prog_bar=True,
            on_step=on_step,
            on_epoch=not on_step,
            batch_size=n_docs,
            sync_dist=not on_step,
        )
        for key in ("qa_loss", "l1", "adapter_norm", "chunk_gate"):
            if key not in out:
                continue
            self.log(
                f"{stage}/{key}",
                out[key],
                on_step=on_step,
                on_epoch=not on_step,
                batch_size=n_docs,
                sync_dist=not on_step,
            )

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Hold the chunk gate open until ``perceiver.gate_start_step`` (after the reading trigger, if set)."""
        if self.hypernet is not None:
            start = self.schedule_start(self.perceiver.gate_start_step)
            self.hypernet.gate_frozen = start is None or self.global_step < start

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        out = self.losses(batch)
        self._log_all("train", out, batch)
        if self.loss.read_loss:
            if self.read_step is None:  # one host sync per step until the trigger fires, none after
                # averaged over ranks, so that every rank fires at the same step and gates alike
                objective = self.trainer.strategy.reduce(out["qa_loss"], reduce_op="mean")
                self.update_reading(float(objective))
            read = -1 if self.read_step is None else self.read_step
            self.log("train/read_step", float(read), on_step=True, prog_bar=False, batch_size=1)
        return out["loss"]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also save the reading trigger's state, so a resumed run starts its gate and L1 at the same step."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["d2l_reading"] = {"read_step": self.read_step, "recent": list(self._recent_objectives)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("d2l_reading")
        if state is not None:
            self.read_step = state["read_step"]
            self._recent_objectives.clear()
            self._recent_objectives.extend(state["recent"])

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._log_all("val", self.losses(batch), batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._log_all("test", self.losses(batch), batch)

    # ------------------------------------------------------------------ inference API (used by callbacks)
    def _precision_context(self):
        """The trainer's forward precision (e.g. bf16 autocast, which FSDP mixed precision needs) when attached."""
        trainer = self._trainer
        return trainer.precision_plugin.forward_context() if trainer is not None else contextlib.nullcontext()

    def internalize(
        self,
        docs: str | Sequence[str],
        chunk_length: int | None = None,
        rank_budget: int | None = None,
        include_bias: bool = True,
    ) -> LoRABatch:
        """One adapter per document (any length; chunked at ``chunk_length``, compressed to ``rank_budget``;
        ``include_bias=False``: the documents' own deltas without the context-free bias block)."""
        with self._precision_context():
            return internalize_documents(
                self.context_encoder,
                self.hypernet,
                self.encoder_tokenizer,
                docs,
                self.chunk_length if chunk_length is None else chunk_length,
                self.rank_budget if rank_budget is None else rank_budget,
                system=self.system_prompt,
                include_bias=include_bias,
            )

    def internalize_images(
        self, images: Any, rank_budget: int | None = None, include_bias: bool = True, batch_size: int = 8
    ) -> LoRABatch:
        """One adapter per image (paths, PIL images or arrays), read by a VLM context encoder as a user turn
        holding only the image; needs ``encoder_model`` to be a vision-language model."""
        with self._precision_context():
            return internalize_images(
                self.context_encoder,
                self.hypernet,
                images,
                self.rank_budget if rank_budget is None else rank_budget,
                batch_size,
                "" if self.system_prompt is None else self.system_prompt,
                include_bias,
            )

    def generate(
        self, questions: str | Sequence[str], adapters: LoRABatch | None, max_new_tokens: int = 32, **kw: Any
    ) -> list[str]:
        """Greedy answers with the documents internalized in ``adapters`` (question ``i`` uses adapter ``i``)."""
        kw.setdefault("system", self.system_prompt)
        with self._precision_context():
            return generate_answers(
                self.base_model, self.tokenizer, questions, adapters, max_new_tokens, **kw
            )
