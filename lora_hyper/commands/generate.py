"""``lora-hyper generate``: Text-to-LoRA task description(s) -> PEFT adapter directory(ies)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from lora_hyper.commands.common import ArgumentParser, CommandError, read_text_file, run_command
from lora_hyper.file_io import check_output_path
from lora_hyper.validation import check_model_dir


def slugify(text: str, max_len: int = 40) -> str:
    """A filesystem-safe short name for a description (``"Sort the list."`` -> ``sort-the-list``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "task"


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="lora-hyper generate", description="Write PEFT adapters from task descriptions.")
    p.add_argument("--model", required=True, help="Text-to-LoRA model directory (TextToLoRA.save_pretrained)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", help="one task description")
    src.add_argument("--task-file", help="UTF-8 file with one task description per line")
    p.add_argument("--out", required=True, help="output adapter directory (a parent folder with --task-file)")
    p.add_argument("--device", default=None, help="where the hypernetwork runs (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace adapter directories that already exist")
    return p


def _generate(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.task is not None:
        if not args.task.strip():
            raise CommandError("--task is empty: give a task description.")
        jobs = [(args.task.strip(), Path(args.out))]
    else:
        lines = read_text_file(args.task_file, what="task").splitlines()
        jobs = [
            (line.strip(), Path(args.out) / f"{n}_{slugify(line)}")
            for n, line in enumerate(lines, 1)
            if line.strip()
        ]
    if not jobs:
        raise CommandError(f"--task-file {args.task_file} holds no task description (all lines are blank).")
    descriptions = [d for d, _ in jobs]
    dupes = sorted({d for d in descriptions if descriptions.count(d) > 1})
    if dupes:
        raise CommandError(
            f"--task-file repeats the description(s) {dupes[:3]}; each line must be a new task."
        )
    for _, out in jobs:
        check_output_path(out, args.overwrite)  # refused before any model loads
    model_dir = check_model_dir(args.model, "text-to-lora")  # before the heavy imports below
    from lora_hyper.text_to_lora import TextToLoRA

    model = TextToLoRA.from_pretrained(model_dir, device=args.device)
    lora = model.generate_lora([d for d, _ in jobs])
    for i, (description, out) in enumerate(jobs):
        model.save_adapter(lora, i, out, overwrite=args.overwrite)
        print(f"{out}\t{description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lora-hyper generate``."""
    return run_command(_generate, list(argv or []))
