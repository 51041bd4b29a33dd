"""The ``lora-hyper`` command: LightningCLI for fit/validate/test/predict, plus inference commands."""

from __future__ import annotations

import importlib
import sys

# Inference commands: name -> (module with ``main(argv) -> int``, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "internalize": ("lora_hyper.commands.internalize", "Doc-to-LoRA: write one PEFT adapter per document"),
    "ask": (
        "lora_hyper.commands.ask",
        "Doc-to-LoRA: internalize a document, then answer a question without it",
    ),
    "generate": (
        "lora_hyper.commands.generate",
        "Text-to-LoRA: write a PEFT adapter from a task description",
    ),
    "export": ("lora_hyper.commands.export", "Convert a Lightning checkpoint into a model directory"),
}

TRAINER_COMMANDS = ("fit", "validate", "test", "predict")


def _cli_class():
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    class LoRAHyperCLI(LightningCLI):
        """LightningCLI in subclass mode for model and data, with ``omegaconf+`` interpolation in recipes.

        ``omegaconf+`` resolves ``${..relative.refs}`` after command-line overrides are applied, so an
        override also changes every value interpolated from it.
        """

        def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
            mode = {"parser_mode": "omegaconf+"}
            super().__init__(
                LightningModule,
                LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                parser_kwargs={**mode, **{c: dict(mode) for c in TRAINER_COMMANDS}},
                save_config_kwargs={"overwrite": True},
                args=args,
                run=run,
                auto_configure_optimizers=False,
            )

    return LoRAHyperCLI


def _usage() -> str:
    lines = ["usage: lora-hyper {fit,validate,test,predict," + ",".join(COMMANDS) + "} ...", ""]
    lines += [f"  {c:<12} LightningCLI {c} (see lora-hyper {c} --help)" for c in TRAINER_COMMANDS]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lora-hyper`` and ``python -m lora_hyper``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[argv[0]][0])
        return int(module.main(argv[1:]) or 0)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    _cli_class()(args=argv)
    return 0


def console_main() -> None:
    sys.exit(main())
