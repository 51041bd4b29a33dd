"""Tiny offline vision-language models (Gemma-3, Idefics3, LLaVA) with processors, and a CPU smoke set-up.

Built from configs in about a second and saved with ``save_pretrained``, so the real loading code
(``AutoProcessor`` / ``AutoModelForImageTextToText.from_pretrained``) reads them like hub checkpoints.
``python -m lora_hyper.testing_vlm DIR`` writes what ``recipes/vlm/imagenette_smoke_cpu.yaml`` needs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from lora_hyper.image_protocol import IMAGENETTE_CLASSES, class_question
from lora_hyper.testing import _CORPUS

VLM_FAMILIES = ("gemma3", "idefics3", "llava")
IMAGE_SIZE = 16
TURN_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'image' %}IMAGE{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_IMAGE_TOKENS = {
    "gemma3": ["<start_of_image>", "<end_of_image>", "<image_soft_token>"],
    "idefics3": ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"],
    "llava": ["<image>"],
}
_IMAGE_PLACEHOLDER = {"gemma3": "<start_of_image>", "idefics3": "<image>", "llava": "<image>"}
_CLASS_WORDS = (
    "tench English springer cassette player chain saw church French horn garbage truck gas pump golf ball "
    "parachute What is in this image? Choose exactly one of the following classes: Respond with only the class."
)


# A one-layer vision tower small enough to run in milliseconds; every family below uses it.
TINY_VISION = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=1,
    num_attention_heads=2,
    image_size=IMAGE_SIZE,
    patch_size=4,
)


def make_vlm_tokenizer(family: str, vocab_size: int = 400) -> Any:
    """A Gemma-style turn tokenizer (vocabulary and template unlike the tiny target's ChatML one) with the image
    tokens of ``family``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if family not in VLM_FAMILIES:
        raise ValueError(f"Unknown tiny VLM family {family!r}: use one of {VLM_FAMILIES}.")
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", *_IMAGE_TOKENS[family]]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([_CORPUS, _CLASS_WORDS] * 4, trainer=trainer)
    extra = {}
    if family == "gemma3":
        extra = {
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        }
    elif family == "llava":
        extra = {"image_token": "<image>"}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<pad>",
        extra_special_tokens=extra,
    )
    fast.chat_template = TURN_TEMPLATE.replace("IMAGE", _IMAGE_PLACEHOLDER[family])
    fast.padding_side = "left"
    return fast


def _text_config(cls: Any, tok: Any, hidden: int, layers: int, **kw: Any) -> dict[str, Any]:
    return cls(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=len(tok),
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **kw,
    ).to_dict()


def make_tiny_vlm(family: str = "gemma3", hidden_size: int = 48, num_layers: int = 3, seed: int = 0):
    """``(model, processor)``: a random ``family`` VLM (fp32, eval mode) reading 16-pixel images as 4 tokens."""
    tok = make_vlm_tokenizer(family)
    ids = tok.convert_tokens_to_ids
    torch.manual_seed(seed)
    if family == "gemma3":
        from transformers import (
            Gemma3Config,
            Gemma3ForConditionalGeneration,
            Gemma3ImageProcessorPil,
            Gemma3Processor,
            Gemma3TextConfig,
            SiglipVisionConfig,
        )

        vision = SiglipVisionConfig(**TINY_VISION)
        text = _text_config(Gemma3TextConfig, tok, hidden_size, num_layers, head_dim=24, sliding_window=64)
        config = Gemma3Config(
            text_config=text,
            vision_config=vision.to_dict(),
            mm_tokens_per_image=4,
            boi_token_index=ids("<start_of_image>"),
            eoi_token_index=ids("<end_of_image>"),
            image_token_index=ids("<image_soft_token>"),
        )
        model = Gemma3ForConditionalGeneration(config)
        images = Gemma3ImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
        processor = Gemma3Processor(images, tok, chat_template=tok.chat_template, image_seq_length=4)
    elif family == "idefics3":
        from transformers import (
            Idefics3Config,
            Idefics3ForConditionalGeneration,
            Idefics3ImageProcessorPil,
            Idefics3Processor,
            Idefics3VisionConfig,
            LlamaConfig,
        )

        vision = Idefics3VisionConfig(**TINY_VISION)
        text = _text_config(LlamaConfig, tok, hidden_size, num_layers)
        config = Idefics3Config(
            vision_config=vision.to_dict(),
            text_config=text,
            scale_factor=2,
            image_token_id=ids("<image>"),
            pad_token_id=tok.pad_token_id,
        )
        model = Idefics3ForConditionalGeneration(config)
        images = Idefics3ImageProcessorPil(
            size={"longest_edge": IMAGE_SIZE},
            max_image_size={"longest_edge": IMAGE_SIZE},
            do_image_splitting=False,
        )
        processor = Idefics3Processor(images, tok, image_seq_len=4, chat_template=tok.chat_template)
    else:
        from transformers import (
            CLIPImageProcessorPil,
            CLIPVisionConfig,
            LlamaConfig,
            LlavaConfig,
            LlavaForConditionalGeneration,
            LlavaProcessor,
        )

        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=8,
            projection_dim=32,
        )
        text = _text_config(LlamaConfig, tok, hidden_size, num_layers)
        config = LlavaConfig(
            vision_config=vision.to_dict(),
            text_config=text,
            image_token_index=ids("<image>"),
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
        )
        model = LlavaForConditionalGeneration(config)
        images = CLIPImageProcessorPil(
            size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
        )
        processor = LlavaProcessor(
            image_processor=images,
            tokenizer=tok,
            patch_size=8,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
            chat_template=tok.chat_template,
        )
    return model.eval(), processor


def save_tiny_vlm(directory: str | Path, family: str = "gemma3", **kwargs: Any) -> Path:
    """Write a tiny VLM + processor to ``directory`` (loads with ``load_context_encoder(directory)``)."""
    directory = Path(directory)
    model, processor = make_tiny_vlm(family, **kwargs)
    model.save_pretrained(str(directory))
    processor.save_pretrained(str(directory))
    return directory


def write_image_folder(
    root: str | Path,
    classes: list[str],
    per_class: int = 2,
    splits: tuple[str, ...] = ("train", "val"),
    seed: int = 0,
) -> Path:
    """An ImageFolder tree ``root/<split>/<class>/<i>.png`` of small random PNGs, one colour cast per class."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for split in splits:
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (20, 24, 3))
                pixels[..., c % 3] = (37 * c) % 256
                Image.fromarray(pixels.astype("uint8")).save(folder / f"{name}_{i}.png")
    return root


def write_smoke_assets(root: str | Path) -> Path:
    """Everything ``recipes/vlm/imagenette_smoke_cpu.yaml`` reads, under ``root``: ``target/`` (a tiny text
    LM), ``vlm/`` (a tiny Gemma-3 VLM), ``imagenette/`` (the Imagenette folder layout with 1 PNG per class) and
    ``docqa.jsonl`` (text-only training documents)."""
    from lora_hyper.testing import save_tiny_llama

    root = Path(root)
    save_tiny_llama(root / "target")
    save_tiny_vlm(root / "vlm", "gemma3")
    write_image_folder(root / "imagenette", list(IMAGENETTE_CLASSES), per_class=1)
    names = list(IMAGENETTE_CLASSES.values())
    question = class_question(names)
    docs = [
        {"context": f"The picture shows a {n}.", "qas": [{"question": question, "answer": n}]} for n in names
    ]
    (root / "docqa.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return root


def main(argv: list[str] | None = None) -> int:
    """``python -m lora_hyper.testing_vlm DIR``: write the CPU smoke set-up into DIR."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m lora_hyper.testing_vlm DIR", file=sys.stderr)
        return 2
    print(f"wrote {write_smoke_assets(args[0])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
