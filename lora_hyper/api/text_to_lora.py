"""TextToLoRA: the trained hypernetwork as an inference object (save/load, descriptions -> adapters -> PEFT dirs)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lora_hyper.encoders.task import BASE_ENCODER, SAVED_TASK_ENCODER, TaskEncoder
from lora_hyper.hypernets.t2l import T2LHypernetConfig, TextToLoRAHypernet
from lora_hyper.lora import LoRABatch, save_peft
from lora_hyper.saved_model import read_model_config, write_model

KIND = "text-to-lora"


class TextToLoRA:
    """Task descriptions in, LoRA adapters out: a frozen task encoder and a ``TextToLoRAHypernet``.

    Generating adapters needs only these two (the base model's layer shapes are stored in the hypernetwork
    config); :meth:`load_base` loads the base model when you also want to run it.
    """

    def __init__(
        self,
        hypernet: TextToLoRAHypernet,
        encoder_config: dict[str, Any],
        base_model: str,
        encoder: TaskEncoder | None = None,
    ) -> None:
        self.hypernet = hypernet.eval()
        self.encoder_config = dict(encoder_config)
        self.base_model_name = base_model
        self._encoder = encoder
        self._adapted: dict[str, torch.Tensor] | None = None  # trained encoder layers read by from_pretrained
        self.base_model: torch.nn.Module | None = None
        self.tokenizer: Any = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_module(cls, module: Any) -> TextToLoRA:
        """The inference object of a (trained) ``TextToLoRAModule`` (shares its weights)."""
        hypernet = module._require_built()
        encoder = module.encoder
        return cls(hypernet, encoder.config(), module.base_model_name, encoder=encoder)

    def save_pretrained(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write ``lora_hyper.json`` + ``hypernet.safetensors`` atomically, no pickle (``overwrite``)."""
        config = {
            "base_model": self.base_model_name,
            "task_encoder": self.encoder_config,
            "hypernet": self.hypernet.config.to_dict(),
        }
        state = dict(self.hypernet.state_dict())
        # the trained task-encoder layers (task_encoder.train_layers) ship with the hypernetwork
        if self.encoder_config.get("train_layers"):
            state.update({SAVED_TASK_ENCODER + k: v for k, v in self.encoder.adapted_state().items()})
        return write_model(directory, KIND, config, state, overwrite=overwrite)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, device: str | torch.device | None = None
    ) -> TextToLoRA:
        """Load a directory written by :meth:`save_pretrained` (any format version), or a shipped model by name
        (e.g. ``"t2l-smollm2-builtin"``; an unknown name lists the shipped ones). Any missing or unexpected
        weight is an error; nothing is unpickled. Trained task-encoder layers (``task_encoder.*`` weights) are
        loaded over the pretrained encoder when it is first used."""
        from safetensors.torch import load_file

        config, weights_path = read_model_config(directory, KIND)
        hypernet = TextToLoRAHypernet(T2LHypernetConfig.from_dict(config["hypernet"]))
        state = load_file(str(weights_path))
        adapted = {
            k[len(SAVED_TASK_ENCODER) :]: v for k, v in state.items() if k.startswith(SAVED_TASK_ENCODER)
        }
        state = {k: v for k, v in state.items() if not k.startswith(SAVED_TASK_ENCODER)}
        if bool(adapted) != bool(config["task_encoder"].get("train_layers")):
            raise ValueError(
                f"{weights_path}: task_encoder.train_layers={config['task_encoder'].get('train_layers', 0)} but "
                f"the file holds {len(adapted)} task-encoder weights: the directory is inconsistent; re-export it."
            )
        expected = set(hypernet.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"{weights_path}: weights do not match the config: missing={missing} unexpected={unexpected}."
            )
        hypernet.load_state_dict(state, strict=True)
        if device is not None:
            hypernet.to(device)
        model = cls(hypernet, config["task_encoder"], config["base_model"])
        model._adapted = {k: v.float() for k, v in adapted.items()} or None
        return model

    # ------------------------------------------------------------------ generation
    @property
    def encoder(self) -> TaskEncoder:
        """The task encoder (built on first use; ``"base"`` encoders load the base model)."""
        if self._encoder is None:
            cfg = dict(self.encoder_config)
            if cfg.get("name") == BASE_ENCODER:
                self.load_base()
                cfg.update(model=self.base_model, tokenizer=self.tokenizer)
            self._encoder = TaskEncoder(**cfg, adapted=self._adapted)
        return self._encoder

    @property
    def spec(self):
        return self.hypernet.spec

    @torch.no_grad()
    def generate_lora(self, descriptions: str | list[str]) -> LoRABatch:
        """One adapter per description, in one batched pass (empty descriptions are an error)."""
        if isinstance(descriptions, str):
            descriptions = [descriptions]
        if not descriptions:
            raise ValueError("Description list is empty: pass at least one task description.")
        device = next(self.hypernet.parameters()).device
        return self.hypernet(self.encoder.encode(list(descriptions)).to(device)).detach()

    @torch.no_grad()
    def generate(
        self,
        prompts: str | Sequence[str],
        lora: LoRABatch | None,
        max_new_tokens: int = 32,
        system: str | None = None,
        **generate_kwargs: Any,
    ) -> list[str]:
        """Greedy chat-templated answers of the base model (loaded on first use) with the generated adapters.

        Prompt ``i`` uses adapter ``i``; an adapter batch of one serves every prompt; ``lora=None`` is the plain
        base model. Symmetric with :meth:`DocToLoRA.generate`::

            lora = t2l.generate_lora("Sort the numbers in ascending order.")
            t2l.generate(["5 3 9 1", "40 2 17"], lora)
        """
        from lora_hyper.generation import generate_answers

        model, tokenizer = self.load_base(device=next(self.hypernet.parameters()).device)
        generate_kwargs.setdefault("share_adapters", lora is not None and lora.batch_size == 1)
        return generate_answers(
            model, tokenizer, prompts, lora, max_new_tokens, system=system, **generate_kwargs
        )

    def save_adapter(
        self, lora: LoRABatch, index: int, directory: str | os.PathLike, overwrite: bool = False
    ) -> Path:
        """Write adapter ``index`` of ``lora`` as a PEFT dir (scale folded into B, alpha == r)."""
        return save_peft(lora, index, directory, base_model_name=self.base_model_name, overwrite=overwrite)

    def load_base(self, device: str | torch.device | None = None, **kwargs: Any):
        """Load (once) and return ``(model, tokenizer)`` of the base model the adapters are for."""
        if self.base_model is None:
            from lora_hyper.base_model import load_base_model

            self.base_model, self.tokenizer = load_base_model(self.base_model_name, device=device, **kwargs)
        return self.base_model, self.tokenizer
