"""``lora-hyper internalize``: documents -> one PEFT adapter directory per document (named after the file)."""

from __future__ import annotations

from pathlib import Path

from lora_hyper.commands.common import ArgumentParser, CommandError, read_text_file, run_command
from lora_hyper.file_io import check_output_path
from lora_hyper.validation import check_model_dir, positive


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
    p.add_argument("--overwrite", action="store_true", help="replace adapter directories that already exist")
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
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} exists and is a file; give a folder for the adapter directories.")
    for stem in stems:
        check_output_path(out / stem, args.overwrite)  # refused before any model loads
    model_dir = check_model_dir(args.model, "doc-to-lora")  # before the heavy imports below
    from lora_hyper.api.doc_to_lora import DocToLoRA

    model = DocToLoRA.from_pretrained(model_dir, device=args.device)
    lora = model.internalize(docs, chunk_length=args.chunk_length, rank_budget=args.rank_budget)
    per_doc = lora.num_bytes() // lora.batch_size
    for i, stem in enumerate(stems):
        path = model.save_adapter(lora, i, Path(args.out) / stem, overwrite=args.overwrite)
        print(f"{path}\trank {lora.rank}\t{per_doc} bytes")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lora-hyper internalize``."""
    return run_command(_internalize, list(argv or []))
