"""``lora-hyper internalize``: documents -> one PEFT adapter directory per document (named after the file)."""

from __future__ import annotations

from pathlib import Path

from lora_hyper.commands.common import ArgumentParser, CommandError, read_text_file, run_command


def positive(value: int | None, flag: str) -> int | None:
    """``value`` when ``None`` or >= 1; otherwise a ``CommandError`` naming ``flag``."""
    if value is not None and value < 1:
        raise CommandError(f"{flag} must be >= 1, got {value}.")
    return value


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="lora-hyper internalize", description="Write one PEFT adapter per document.")
    p.add_argument(
        "--model",
        required=True,
        help="Doc-to-LoRA model directory (save_pretrained) or shipped name, e.g. d2l-smollm2-niah",
    )
    p.add_argument("--doc", required=True, nargs="+", help="UTF-8 text file(s) to internalize")
    p.add_argument(
        "--out", required=True, help="folder that receives one adapter dir per document (file stem)"
    )
    p.add_argument("--chunk-length", type=int, default=None, help="tokens per chunk (default: the model's)")
    p.add_argument("--rank-budget", type=int, default=None, help="compress each adapter to this rank")
    p.add_argument("--device", default=None, help="where the models run (default cpu)")
    return p


def _internalize(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    positive(args.chunk_length, "--chunk-length")
    positive(args.rank_budget, "--rank-budget")
    docs = [read_text_file(p) for p in args.doc]  # every input is checked before anything loads or is written
    stems = [Path(p).stem for p in args.doc]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise CommandError(
            f"several documents share the file stem(s) {dupes}; rename them (adapters are named by stem)."
        )
    from lora_hyper.doc_to_lora import DocToLoRA

    model = DocToLoRA.from_pretrained(args.model, device=args.device)
    lora = model.internalize(docs, chunk_length=args.chunk_length, rank_budget=args.rank_budget)
    per_doc = lora.num_bytes() // lora.batch_size
    for i, stem in enumerate(stems):
        path = model.save_adapter(lora, i, Path(args.out) / stem)
        print(f"{path}\trank {lora.rank}\t{per_doc} bytes")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lora-hyper internalize``."""
    return run_command(_internalize, list(argv or []))
