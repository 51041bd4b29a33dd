"""TextToLoRA: the trained hypernetwork as an inference object (save/load, descriptions -> adapters -> PEFT dirs)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lora_hyper.file_io import read_json_config, validate_safetensors
from lora_hyper.hypernets.t2l import T2LHypernetConfig, TextToLoRAHypernet
from lora_hyper.lora import LoRABatch, atomic_directory_write, save_peft
from lora_hyper.pretrained import resolve_model_dir
from lora_hyper.task_encoder import BASE_ENCODER, TaskEncoder

CONFIG_FILE = "t2l_config.json"
WEIGHTS_FILE = "t2l_model.safetensors"
FORMAT = "lora-hyper/text-to-lora"
FORMAT_VERSION = 1


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
        """Write ``t2l_config.json`` + ``t2l_model.safetensors`` atomically, no pickle (``overwrite``)."""
        from safetensors.torch import save_file

        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "base_model": self.base_model_name,
            "task_encoder": self.encoder_config,
            "hypernet": self.hypernet.config.to_dict(),
        }
        state = {k: v.detach().cpu().contiguous() for k, v in self.hypernet.state_dict().items()}

        def write(tmp: Path) -> None:
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})

        return atomic_directory_write(directory, write, overwrite=overwrite)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, device: str | torch.device | None = None
    ) -> TextToLoRA:
        """Load a directory written by :meth:`save_pretrained`, or a shipped model by name (e.g.
        ``"t2l-smollm2-builtin"``; an unknown name lists the shipped ones). Any missing or unexpected weight is an
        error; nothing is unpickled."""
        from safetensors.torch import load_file

        directory = resolve_model_dir(directory)
        cfg_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not directory.is_dir():
            raise FileNotFoundError(f"Text-to-LoRA model directory not found: {directory}")
        if not cfg_path.exists() or not weights_path.exists():
            raise FileNotFoundError(
                f"{directory} is not a Text-to-LoRA model: {CONFIG_FILE} or {WEIGHTS_FILE} is missing."
            )
        config = read_json_config(cfg_path, "Text-to-LoRA config")
        if config.get("format") != FORMAT:
            raise ValueError(f"{cfg_path} is not a Text-to-LoRA config (format={config.get('format')!r}).")
        if int(config.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"{directory} was written by a newer lora-hyper (format {config['format_version']})."
            )
        missing = [k for k in ("base_model", "task_encoder", "hypernet") if k not in config]
        if missing:
            raise ValueError(f"{cfg_path} lacks {missing}; re-save the model with save_pretrained.")
        validate_safetensors(weights_path)  # cheap header check, before anything is built or loaded
        hypernet = TextToLoRAHypernet(T2LHypernetConfig.from_dict(config["hypernet"]))
        state = load_file(str(weights_path))
        expected = set(hypernet.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"{weights_path}: weights do not match the config: missing={missing} unexpected={unexpected}."
            )
        hypernet.load_state_dict(state, strict=True)
        if device is not None:
            hypernet.to(device)
        return cls(hypernet, config["task_encoder"], config["base_model"])

    # ------------------------------------------------------------------ generation
    @property
    def encoder(self) -> TaskEncoder:
        """The task encoder (built on first use; ``"base"`` encoders load the base model)."""
        if self._encoder is None:
            cfg = dict(self.encoder_config)
            if cfg.get("name") == BASE_ENCODER:
                self.load_base()
                cfg.update(model=self.base_model, tokenizer=self.tokenizer)
            self._encoder = TaskEncoder(**cfg)
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
