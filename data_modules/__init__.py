"""LightningDataModules (imported as ``lora_hyper.data_modules``); batch contracts in ``collate.py``.

``from lora_hyper.data_modules import NIAHDataModule`` works for every public name below; each is imported on
first use, so importing the package itself loads neither Lightning nor torch.
"""

from __future__ import annotations

from lora_hyper.lazy import lazy_exports

# Public name -> submodule defining it.
_LAZY = {
    "ImagenetteDataModule": ".imagenette",
    "NIAHDataModule": ".niah",
    "DocumentQADataModule": ".documents",
    "TaskCorpusDataModule": ".task_sampler",
    "LoRALibraryDataModule": ".lora_library",
    "ResumableDataLoader": ".stateful",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
