"""``lora-hyper generate``: Text-to-LoRA task description(s) -> PEFT adapter directory(ies)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from lora_hyper.commands.common import ArgumentParser, CommandError, read_text_file, run_command
from lora_hyper.file_io import check_output_path
from lora_hyper.validation import check_model_dir, positive


def slugify(text: str, max_len: int = 40) -> str:
    """A filesystem-safe short name for a description (``"Sort the list."`` -> ``sort-the-list``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "task"


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="lora-hyper generate",
        description="Task description(s) -> LoRA adapter(s): write PEFT dirs (--out) and/or answer --input lines.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="Text-to-LoRA model directory (TextToLoRA.save_pretrained) or shipped name, e.g. t2l-smollm2-builtin",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", help="one task description")
    src.add_argument("--task-file", help="UTF-8 file with one task description per line")
    p.add_argument("--out", help="output adapter directory (a parent folder with --task-file)")
    p.add_argument(
        "--input",
        help="UTF-8 file of inputs, one per line: print the base model's answer to each with the adapter",
    )
    p.add_argument("--max-new-tokens", type=int, default=32, help="answer length limit (with --input)")
    p.add_argument("--system", default=None, help="system message before every --input line")
    p.add_argument("--device", default=None, help="where the hypernetwork runs (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace adapter directories that already exist")
    return p


def _generate(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.out is None and args.input is None:
        raise CommandError("nothing to do: give --out (write PEFT adapters) and/or --input (print answers).")
    positive(args.max_new_tokens, "--max-new-tokens")
    inputs = _input_lines(args.input) if args.input is not None else []
    if args.task is not None:
        if not args.task.strip():
            raise CommandError("--task is empty: give a task description.")
        jobs = [(args.task.strip(), Path(args.out) if args.out else None)]
    else:
        lines = read_text_file(args.task_file, what="task").splitlines()
        jobs = [
            (line.strip(), Path(args.out) / f"{n}_{slugify(line)}" if args.out else None)
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
        if out is not None:
            check_output_path(out, args.overwrite)  # refused before any model loads
    model_dir = check_model_dir(args.model, "text-to-lora")  # before the heavy imports below
    from lora_hyper.api.text_to_lora import TextToLoRA

    model = TextToLoRA.from_pretrained(model_dir, device=args.device)
    lora = model.generate_lora([d for d, _ in jobs])
    for i, (description, out) in enumerate(jobs):
        if out is not None:
            model.save_adapter(lora, i, out, overwrite=args.overwrite)
            print(f"{out}\t{description}")
        if inputs:
            if len(jobs) > 1 or out is not None:
                print(f"# {description}")
            answers = model.generate(
                inputs, lora.select(i), max_new_tokens=args.max_new_tokens, system=args.system
            )
            for line, answer in zip(inputs, answers):
                print(f"{line}\t{' '.join(answer.split())}")
    return 0


def _input_lines(path: str) -> list[str]:
    """The non-blank lines of ``--input``; a file of only blank lines is an error."""
    lines = [line.strip() for line in read_text_file(path, what="input").splitlines() if line.strip()]
    if not lines:
        raise CommandError(f"--input {path} holds no input (all lines are blank).")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lora-hyper generate``."""
    return run_command(_generate, list(argv or []))
