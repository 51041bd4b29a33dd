"""lora-hyper: hypernetworks that generate LoRA adapters (Text-to-LoRA, Doc-to-LoRA) on Lightning."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def _extend_path_for_source_checkout() -> None:
    """Make ``lora_hyper.data_modules``/``lora_hyper.callbacks`` import from a source checkout.

    An installed wheel carries those folders inside ``lora_hyper/``; a process started in the repo root
    imports the source ``lora_hyper/`` first, which does not, so we add the repo root to ``__path__``.
    """
    here = Path(__file__).resolve().parent
    root = here.parent
    if (here / "data_modules").exists():
        return
    if (root / "pyproject.toml").exists() and (root / "data_modules" / "__init__.py").exists():
        if str(root) not in __path__:
            __path__.append(str(root))


_extend_path_for_source_checkout()

from lora_hyper.lazy import lazy_exports  # noqa: E402

_LAZY = {
    "LoRASpec": "lora_hyper.lora",
    "LoRABatch": "lora_hyper.lora",
    "apply_lora": "lora_hyper.lora",
    "save_peft": "lora_hyper.lora",
    "load_peft": "lora_hyper.lora",
    "load_base_model": "lora_hyper.base_model",
    "native_window": "lora_hyper.base_model",
    "DocToLoRA": "lora_hyper.api",
    "TextToLoRA": "lora_hyper.api",
}

__all__ = sorted(_LAZY) + ["__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)  # public names import on first use
