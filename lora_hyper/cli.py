"""The ``lora-hyper`` command: LightningCLI for fit/validate/test/predict, plus inference commands."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

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
        override also changes every value interpolated from it. Output is for people: Lightning's adverts and
        known-harmless warnings are hidden, and progress is shown by ``lora_hyper.progress`` (plain lines
        when stdout is not a terminal, ``step/max_steps`` bars when it is).
        """

        def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
            from lora_hyper.progress import quiet_lightning

            quiet_lightning()
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

        def _instantiate_trainer(self, config: dict, callbacks: list) -> object:
            """Add ``default_progress_bar()`` unless the recipe brings a progress bar or turns bars off."""
            from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

            from lora_hyper.progress import default_progress_bar

            given = config.get("callbacks") or []
            given = [*(given if isinstance(given, list) else [given]), *callbacks]
            wanted = config.get("enable_progress_bar") is not False and not config.get("barebones")
            if wanted and not any(isinstance(c, ProgressBar) for c in given):
                callbacks = [*callbacks, default_progress_bar()]
            return super()._instantiate_trainer(config, callbacks)

        def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs):
            """Checkpoints given with ``--ckpt_path`` load with ``weights_only=True`` (no pickle) by default."""
            parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
            if "weights_only" in self._subcommand_method_arguments.get(subcommand, ()):
                parser.set_defaults(weights_only=True)
            return parser

        def _parse_ckpt_path(self) -> None:
            """Lightning reads the model's hyperparameters back from a ``--ckpt_path`` checkpoint; those of
            checkpoints written before the argument groups (flat ``lr``, ``rank``, ...) are moved into the groups
            first (``lora_hyper.modules.args.from_flat``)."""
            import torch

            subcommand = self.config.get("subcommand")
            ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
            if ckpt_path and Path(ckpt_path).is_file():
                ckpt = torch.load(ckpt_path, weights_only=True, map_location="cpu")
                hparams = ckpt.get("hyper_parameters") or {}
                path = ckpt.get("lora_hyper_class") or hparams.get("_class_path")
                cls = _import_class(path) if path else None
                if cls is not None and hasattr(cls, "arguments_from_hparams"):
                    from lora_hyper.modules.args import is_grouped

                    if not is_grouped(cls, hparams):
                        model = {"class_path": path, "init_args": cls.arguments_from_hparams(hparams)}
                        self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)
                        return
            super()._parse_ckpt_path()

        def parse_arguments(self, parser, args) -> None:
            """Parse quietly: a jsonargparse error becomes one line (the usage dump only with --help)."""
            import contextlib
            import io

            from lora_hyper.recipe_check import summarize_parse_error
            from lora_hyper.validation import InputError

            buffer = io.StringIO()
            try:
                with contextlib.redirect_stderr(buffer):
                    super().parse_arguments(parser, args)
            except SystemExit as e:
                if e.code in (0, None):
                    sys.stderr.write(buffer.getvalue())
                    raise
                raise InputError(summarize_parse_error(buffer.getvalue())) from None
            sys.stderr.write(buffer.getvalue())

        def _check_targets(self) -> None:
            """A misspelled LoRA target fails before the trainer starts (meta-device model, no weights)."""
            cfg = self.config.get(self.subcommand) if self.subcommand else self.config
            init = cfg.get("model.init_args") if cfg is not None else None
            base = getattr(init, "base_model", None) if init is not None else None
            lora = getattr(init, "lora", None) if init is not None else None
            targets = getattr(lora, "targets", None) if lora is not None else None
            if isinstance(base, str) and targets:
                from lora_hyper.base_model import check_targets
                from lora_hyper.validation import check_lora_args

                check_lora_args(list(targets), 1)
                check_targets(base, list(targets))

        def instantiate_classes(self) -> None:
            """Bad argument values rejected by a class's ``__init__``, or by a callback's ``check_module`` against
            the model, are user errors (one line, exit 2), raised before the trainer writes anything."""
            from lora_hyper.validation import InputError

            try:
                self._check_targets()
                super().instantiate_classes()
                for callback in self.trainer.callbacks:  # callbacks that depend on the module's settings
                    check = getattr(callback, "check_module", None)
                    if callable(check):
                        check(self.model)
            except (ValueError, TypeError) as e:
                from lora_hyper.recipe_check import first_cause

                raise InputError(first_cause(str(e))) from e

    return LoRAHyperCLI


def _import_class(path: str) -> type | None:
    """The class at ``path`` (``module.Class``), ``None`` when it cannot be imported."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


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
    from lora_hyper.commands.common import debug, report
    from lora_hyper.validation import InputError

    try:
        if argv[0] not in TRAINER_COMMANDS:
            import difflib

            close = difflib.get_close_matches(argv[0], [*TRAINER_COMMANDS, *COMMANDS], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see lora-hyper --help"
            raise InputError(f"unknown command {argv[0]!r}{hint}")
        if not {"-h", "--help"} & set(argv):
            from lora_hyper.recipe_check import check_recipe

            check_recipe(argv[1:])  # missing files fail before Lightning is imported
        import logging
        import warnings

        warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
        logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)  # "Seed set to 0"
        _cli_class()(args=argv)
    except InputError as e:
        if debug():
            raise
        return report(e)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError) as e:
        if debug():
            raise
        return report(e)
    return 0


def console_main() -> None:
    sys.exit(main())
