"""Training progress a person can read: plain lines in logs, step/max_steps bars in terminals, no ads or noise.

``lora-hyper fit`` picks the display with ``default_progress_bar``: when stdout is not a terminal (a log file,
``nohup``, a job scheduler), ``LineProgressBar`` prints one line every N steps or every 30 s, whichever comes
first (``step 120/2600  loss 1.234  0.48 it/s  ETA 1:21:07``); in a terminal Lightning's bar is kept, but a run
driven by ``max_steps`` counts ``step/max_steps`` instead of showing ``Epoch 0/-2``. ``quiet_lightning`` hides
Lightning's "💡 Tip" adverts and the warnings every ``fit`` of these modules prints although nothing is wrong;
the CLI installs it, importing the library does not.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

__all__ = [
    "HARMLESS_WARNINGS",
    "LineProgressBar",
    "StepRichProgressBar",
    "StepTQDMProgressBar",
    "default_progress_bar",
    "format_duration",
    "quiet_lightning",
    "say",
]

# Regexes (matched at the start of a warning's message) of warnings that say nothing about the user's run.
HARMLESS_WARNINGS: tuple[str, ...] = (
    # The frozen base model sits in eval mode on purpose (no dropout in the model being adapted).
    r"Found \d+ module\(s\) in eval mode at the start of training",
    # ``val_dataloader`` returns ``[]`` when a recipe turns validation off (e.g. ``val_bins: []``).
    r"Total length of `list` across ranks is zero",
    # Lightning's own use of a torch pytree API that torch deprecated; nothing a user can change.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)
_ADVERT_MARKERS = ("💡 Tip:", "litlogger", "litmodels")


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``1:21:07``), with days in front past 24 hours."""
    return str(timedelta(seconds=max(0, round(seconds))))


def _steps_driven(trainer: L.Trainer) -> bool:
    """Whether training ends at ``max_steps`` (epochs unbounded), so steps, not epochs, measure progress."""
    return bool(trainer.max_steps and trainer.max_steps > 0 and trainer.max_epochs in (None, -1))


def _total_steps(trainer: L.Trainer) -> int | None:
    """Optimizer steps the run will take: ``max_steps``, else ``max_epochs`` x steps per epoch (when known)."""
    if trainer.max_steps and trainer.max_steps > 0:
        return int(trainer.max_steps)
    batches, epochs = trainer.num_training_batches, trainer.max_epochs
    if epochs and epochs > 0 and math.isfinite(batches) and batches > 0:
        return int(epochs * math.ceil(batches / max(trainer.accumulate_grad_batches, 1)))
    return None


def _scalar(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor with more than one element
        return None


class LineProgressBar(ProgressBar):
    """One plain line per ``every_n_steps`` optimizer steps or ``every_seconds`` seconds, whichever comes first.

    For logs, where terminal bars turn into garbage: ``step 120/2600  loss 1.234  0.48 it/s  ETA 1:21:07``.
    The first step and the last one always get a line; a resumed run says where it resumed, and every
    validation during ``fit`` prints its metrics on one line. Speed and ETA count the steps of this process.

    Args:
        every_n_steps: print when the step is a multiple of this (default: the trainer's ``log_every_n_steps``).
        every_seconds: print when this many seconds passed since the last line.
        stream: where lines go (default: ``sys.stdout`` at print time).
        clock: seconds as a float (tests pass a fake clock).
    """

    def __init__(
        self,
        every_n_steps: int | None = None,
        every_seconds: float = 30.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}.")
        if every_seconds <= 0:
            raise ValueError(f"every_seconds must be > 0, got {every_seconds}.")
        self.every_n_steps = every_n_steps
        self.every_seconds = float(every_seconds)
        self.stream = stream
        self.clock = clock
        self._enabled = True
        self._start_time = 0.0
        self._start_step = 0
        self._last_time = 0.0
        self._last_step = -1

    # ------------------------------------------------------------------ ProgressBar interface
    @property
    def is_enabled(self) -> bool:
        """Whether lines are printed (Lightning disables the bar on ranks other than 0)."""
        return self._enabled

    def disable(self) -> None:
        """Stop printing (called by Lightning on non-zero ranks and around tuner runs)."""
        self._enabled = False

    def enable(self) -> None:
        """Print again."""
        self._enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Print one line (flushed, so it shows up in a log file right away)."""
        if self._enabled:
            print(*args, file=self.stream or sys.stdout, flush=True, **kwargs)

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_time = self._last_time = self.clock()
        self._start_step = self._last_step = trainer.global_step
        if trainer.global_step > 0:
            total = _total_steps(trainer)
            self.print(f"resumed at step {trainer.global_step}" + (f"/{total}" if total else ""))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step == self._last_step:  # accumulating gradients: no optimizer step yet
            return
        now = self.clock()
        every = self.every_n_steps or max(int(trainer.log_every_n_steps or 1), 1)
        total = _total_steps(trainer)
        first = self._last_step == self._start_step
        if first or step % every == 0 or now - self._last_time >= self.every_seconds or step == total:
            self.print(self.format_line(trainer, step, total, now))
            self._last_time = now
        self._last_step = step

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = {k: _scalar(v) for k, v in trainer.callback_metrics.items() if k.startswith("val")}
        shown = "  ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()) if v is not None)
        self.print(f"validation at step {trainer.global_step}" + (f"  {shown}" if shown else ""))

    # ------------------------------------------------------------------ formatting
    def format_line(self, trainer: L.Trainer, step: int, total: int | None, now: float) -> str:
        """``step S[/T]  loss L  R it/s  ETA H:MM:SS`` (parts that are not known yet are left out)."""
        parts = [f"step {step}/{total}" if total else f"step {step}"]
        loss = self._loss(trainer)
        if loss is not None:
            parts.append(f"loss {loss:.4g}")
        elapsed, done = now - self._start_time, step - self._start_step
        if elapsed > 0 and done > 0:
            rate = done / elapsed
            parts.append(f"{rate:.3g} it/s")
            if total and step < total:
                parts.append(f"ETA {format_duration((total - step) / rate)}")
        return "  ".join(parts)

    @staticmethod
    def _loss(trainer: L.Trainer) -> float | None:
        """The training loss shown in progress bars (``train/loss``, ``loss``, or another ``*loss`` metric)."""
        for metrics in (trainer.progress_bar_metrics, trainer.callback_metrics):
            for key in ("train/loss", "loss", "train_loss"):
                if key in metrics:
                    return _scalar(metrics[key])
            for key, value in metrics.items():
                if key.endswith("loss") and not key.startswith(("val", "test")):
                    return _scalar(value)
        return None


class StepRichProgressBar(RichProgressBar):
    """Lightning's Rich bar, counting ``step/max_steps`` (not ``Epoch 0/-2``) when ``max_steps`` ends the run."""

    @property
    def total_train_batches(self) -> int | float:
        if self._trainer is not None and _steps_driven(self.trainer):
            return self.trainer.max_steps
        return super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        if _steps_driven(self.trainer):
            return f"{'Step':{len(self.validation_description)}}"
        return super()._get_train_description(current_epoch)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if _steps_driven(trainer):  # one bar over the whole run, starting where a resumed run starts
            self._update(self.train_progress_bar_id, trainer.global_step)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not _steps_driven(trainer):
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
        self.refresh()


class StepTQDMProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, counting ``step/max_steps`` when ``max_steps`` ends the run (used without Rich)."""

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if not _steps_driven(trainer):
            return super().on_train_epoch_start(trainer, *args)
        if self._leave:
            self.train_progress_bar = self.init_train_tqdm()
        bar = self.train_progress_bar  # one bar over the whole run, starting where a resumed run starts
        bar.reset(total=trainer.max_steps)
        bar.initial = 0
        bar.set_description("Step", refresh=False)
        if not bar.disable:
            bar.n = trainer.global_step
            bar.refresh()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not _steps_driven(trainer):
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        bar, step = self.train_progress_bar, trainer.global_step
        if bar is not None and not bar.disable and self._should_update(step, bar.total):
            bar.n = step
            bar.refresh()
            bar.set_postfix(self.get_metrics(trainer, pl_module))


def say(trainer: Any, message: str) -> None:
    """Print one line for a person, through the trainer's progress bar when it has one (bars stay intact)."""
    bar = getattr(trainer, "progress_bar_callback", None)
    if bar is not None:
        bar.print(message)
    else:
        print(message, flush=True)


def default_progress_bar(stream: TextIO | None = None) -> ProgressBar:
    """``LineProgressBar`` when ``stream`` (stdout) is not a terminal, else a step-aware Rich (or tqdm) bar."""
    stream = stream if stream is not None else sys.stdout
    isatty = getattr(stream, "isatty", None)
    if not (callable(isatty) and isatty()):
        return LineProgressBar()
    from lightning.pytorch.callbacks.progress.rich_progress import _RICH_AVAILABLE

    return StepRichProgressBar() if _RICH_AVAILABLE else StepTQDMProgressBar()


class _DropAdverts(logging.Filter):
    """Drop Lightning's INFO adverts ("💡 Tip: ... litlogger/litmodels"); keep everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return not any(marker in message for marker in _ADVERT_MARKERS)


def quiet_lightning(hf_progress_bars: bool | None = None) -> None:
    """Hide Lightning's adverts and ``HARMLESS_WARNINGS``; without a terminal, also Hugging Face loading bars.

    Called by the ``lora-hyper`` CLI (never at import: a library must not change its host's warning filters).
    ``hf_progress_bars=None`` keeps the ``Loading weights`` bars only when stderr is a terminal. Idempotent.
    """
    for pattern in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdverts) for f in logger.filters):
            logger.addFilter(_DropAdverts())
    if hf_progress_bars is None:
        hf_progress_bars = bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not hf_progress_bars:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
        if "transformers" in sys.modules:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
