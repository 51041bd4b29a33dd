"""The LoRA core: specs, per-sample adapter batches, injection into a frozen model, PEFT import/export."""

from lora_hyper.lora.apply import apply_lora, merge_lora
from lora_hyper.lora.batch import LoRABatch
from lora_hyper.lora.factors import align_adapter, lora_a_init
from lora_hyper.lora.peft_io import atomic_directory_write, load_peft, save_peft
from lora_hyper.lora.spec import LoRASpec, find_decoder_layers

__all__ = [
    "LoRABatch",
    "LoRASpec",
    "align_adapter",
    "apply_lora",
    "atomic_directory_write",
    "find_decoder_layers",
    "load_peft",
    "lora_a_init",
    "merge_lora",
    "save_peft",
]
