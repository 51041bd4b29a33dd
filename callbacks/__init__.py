"""Lightning callbacks for evaluation during training (imported as ``lora_hyper.callbacks``).

``from lora_hyper.callbacks import NIAHEvaluation`` works for every public name below; each is imported on
first use, so importing the package itself loads neither Lightning nor torch.
"""

from __future__ import annotations

from lora_hyper.lazy import lazy_exports

# Public name -> submodule defining it.
_LAZY = {
    "ImageClassificationEvaluation": ".image_classification",
    "NIAHEvaluation": ".niah",
    "ZeroShotTaskEvaluation": ".zero_shot",
    "NeedleCurriculum": ".curriculum",
    "ChunkHealthProbe": ".chunk_health",
    "PeriodicEvaluation": ".periodic",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
