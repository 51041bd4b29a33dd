"""``lora-hyper ask``: internalize a document (or an image, through a VLM encoder), then answer a question about
it WITHOUT it in the prompt."""

from __future__ import annotations

import time

from lora_hyper.commands.common import (
    ArgumentParser,
    CommandError,
    human_bytes,
    read_text_file,
    run_command,
)
from lora_hyper.validation import check_model_dir, positive


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="lora-hyper ask",
        description="Answer a question about a document (or an image) it internalized.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="Doc-to-LoRA model directory (save_pretrained) or shipped name, e.g. d2l-smollm2-niah",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--doc", help="UTF-8 text file to internalize")
    source.add_argument(
        "--image", help="image file to internalize (a model trained with a VLM context encoder)"
    )
    p.add_argument("--question", required=True, help="the question (asked without the document in context)")
    p.add_argument("--chunk-length", type=int, default=None, help="tokens per chunk (default: the model's)")
    p.add_argument("--rank-budget", type=int, default=None, help="compress the adapter to this rank")
    p.add_argument("--max-new-tokens", type=int, default=48, help="answer length limit")
    p.add_argument("--device", default=None, help="where the models run (default cpu)")
    return p


def _ask(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not args.question.strip():
        raise CommandError("--question is empty: ask something about the document.")
    positive(args.chunk_length, "--chunk-length")
    positive(args.rank_budget, "--rank-budget")
    positive(args.max_new_tokens, "--max-new-tokens")
    if args.image is not None:
        return _ask_image(args)
    doc = read_text_file(args.doc)
    model_dir = check_model_dir(args.model, "doc-to-lora")  # before the heavy imports below
    from lora_hyper.api.doc_to_lora import DocToLoRA
    from lora_hyper.base_model import kv_cache_bytes

    model = DocToLoRA.from_pretrained(model_dir, device=args.device)
    start = time.perf_counter()
    lora = model.internalize([doc], chunk_length=args.chunk_length, rank_budget=args.rank_budget)
    seconds = time.perf_counter() - start
    answer = model.generate([args.question], lora, max_new_tokens=args.max_new_tokens)[0]
    n_tokens = len(model.tokenizer(doc, add_special_tokens=False)["input_ids"])
    dtype_bytes = next(model.base_model.parameters()).element_size()
    kv = kv_cache_bytes(model.base_model.config, n_tokens, dtype_bytes)
    adapter = lora.num_bytes()
    print(f"answer: {answer}")
    print(f"internalize: {seconds:.3f} s ({n_tokens} document tokens)")
    print(
        f"adapter: {human_bytes(adapter)} (rank {lora.rank}) vs KV cache: {human_bytes(kv)} for {n_tokens} tokens "
        f"({kv / adapter:.2f}x)"
    )
    return 0


def _ask_image(args) -> int:
    """``--image``: the VLM encoder reads the image, the text-only base answers without seeing it."""
    from lora_hyper.images import load_image

    image = load_image(args.image, "--image")  # a missing or non-image file fails before any model loads
    model_dir = check_model_dir(args.model, "doc-to-lora")
    from lora_hyper.api.doc_to_lora import DocToLoRA

    encoder = DocToLoRA.read_config(model_dir)["encoder"]
    if encoder.get("kind") != "vlm":
        raise CommandError(
            f"{model_dir} has no VLM context encoder (encoder: {encoder.get('model') or 'the base model'}), so it "
            "cannot read images: use --doc, or a model trained with a vision-language context encoder "
            "(encoder.model)."
        )
    if args.chunk_length is not None:
        raise CommandError("--chunk-length applies to --doc only; an image is read as one turn.")
    model = DocToLoRA.from_pretrained(model_dir, device=args.device)
    start = time.perf_counter()
    lora = model.internalize_images([image], rank_budget=args.rank_budget)
    seconds = time.perf_counter() - start
    answer = model.generate([args.question], lora, max_new_tokens=args.max_new_tokens)[0]
    print(f"answer: {answer}")
    print(f"internalize: {seconds:.3f} s (image {image.width}x{image.height})")
    print(f"adapter: {human_bytes(lora.num_bytes())} (rank {lora.rank})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lora-hyper ask``."""
    return run_command(_ask, list(argv or []))
