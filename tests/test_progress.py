"""Progress a person can see: plain progress lines, step-counting bars, announced and bounded evaluations, no
Lightning adverts or harmless warnings in CLI output, and package-level names that import lazily."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import warnings
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from lora_hyper.progress import (
    LineProgressBar,
    StepRichProgressBar,
    StepTQDMProgressBar,
    default_progress_bar,
    format_duration,
    quiet_lightning,
)

LINE = re.compile(r"^step (\d+)/8  loss (\d+\.\d+)  ([\d.]+) it/s(  ETA (\d+:\d\d:\d\d))?$")


class LoggingBoringModel(BoringModel):
    """Lightning's demo model, logging ``train/loss`` to the progress bar like our modules do."""

    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        self.log("train/loss", out["loss"], prog_bar=True)
        return out


class FakeClock:
    """Each call is ``step`` seconds after the previous one."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _fit_lines(capsys, bar: LineProgressBar, **trainer_kwargs) -> list[str]:
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=8,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[bar],
        **trainer_kwargs,
    )
    capsys.readouterr()
    trainer.fit(LoggingBoringModel())
    return capsys.readouterr().out.splitlines()


def test_line_progress_format_and_step_cadence(capsys, tmp_path):
    lines = _fit_lines(capsys, LineProgressBar(every_n_steps=3, every_seconds=1e9, clock=FakeClock(2.0)))
    assert all(LINE.match(line) for line in lines), lines
    assert [int(LINE.match(line).group(1)) for line in lines] == [1, 3, 6, 8]  # first, every 3rd, last
    # 2 s per step: 0.5 it/s, and at step 3 five steps remain: 10 s.
    assert lines[1].endswith("  0.5 it/s  ETA 0:00:10"), lines[1]
    assert "ETA" not in lines[-1] and not any("Epoch" in line for line in lines)


def test_line_progress_time_cadence_counts_optimizer_steps(capsys):
    bar = LineProgressBar(every_n_steps=100, every_seconds=5.0, clock=FakeClock(2.0))
    lines = _fit_lines(capsys, bar, accumulate_grad_batches=2)
    # One clock tick per optimizer step (not per batch): a line at step 1, then once 5 s passed, then the last.
    assert [int(LINE.match(line).group(1)) for line in lines] == [1, 4, 7, 8], lines


def test_line_progress_reports_validation_and_checks_arguments(capsys):
    class Validated(LoggingBoringModel):
        def validation_step(self, batch, batch_idx):
            self.log("val/loss", self.step(batch))

    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=4,
        val_check_interval=2,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[LineProgressBar(every_n_steps=2)],
    )
    capsys.readouterr()
    trainer.fit(Validated())
    out = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in out if line.startswith("validation")] == [
        "validation at step 2",
        "validation at step 4",
    ]
    assert re.search(r"val/loss \d", out[-1]), out
    with pytest.raises(ValueError, match="every_n_steps"):
        LineProgressBar(every_n_steps=0)
    assert format_duration(4867.4) == "1:21:07"


def test_terminal_bars_count_steps_when_max_steps_ends_the_run():
    steps = SimpleNamespace(max_steps=2600, max_epochs=-1, num_training_batches=10**6, global_step=0)
    bar = StepRichProgressBar()
    bar._trainer = steps
    assert bar.total_train_batches == 2600
    assert bar._get_train_description(0).strip() == "Step"  # not "Epoch 0/-2"
    bar._trainer = SimpleNamespace(max_steps=-1, max_epochs=3, num_training_batches=50, global_step=0)
    assert bar._get_train_description(0).strip() == "Epoch 0/2" and bar.total_train_batches == 50
    assert isinstance(default_progress_bar(io.StringIO()), LineProgressBar)
    tty = SimpleNamespace(isatty=lambda: True)
    assert isinstance(default_progress_bar(tty), (StepRichProgressBar, StepTQDMProgressBar))


def test_tqdm_bar_counts_steps(capsys):
    bar = StepTQDMProgressBar()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=6,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[bar],
        accumulate_grad_batches=2,
    )
    trainer.fit(LoggingBoringModel())
    assert bar.train_progress_bar.n == 6 and bar.train_progress_bar.total == 6
    out = capsys.readouterr().out  # Lightning's tqdm bars write to stdout
    assert "Step: 100%" in out and "6/6" in out and "Epoch" not in out


# ------------------------------------------------------------------------------------------ noise filters
def test_quiet_lightning_hides_exactly_the_targeted_messages():
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger.addHandler(handler)
    old_filters = list(logger.filters)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            quiet_lightning(hf_progress_bars=True)
            hidden = [
                (
                    "Found 33 module(s) in eval mode at the start of training. This may lead to ...",
                    PossibleUserWarning,
                ),
                (
                    "Total length of `list` across ranks is zero. Please make sure this was your intention.",
                    UserWarning,
                ),
                (
                    "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec)` instead.",
                    FutureWarning,
                ),
            ]
            kept = [
                (
                    "Total length of `DataLoader` across ranks is zero. Please make sure this was your intention.",
                    UserWarning,
                ),
                (
                    "You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not resumable.",
                    PossibleUserWarning,
                ),
                ("Found no module in eval mode", UserWarning),
                (
                    "The number of training batches (2) is smaller than the logging interval",
                    PossibleUserWarning,
                ),
            ]
            for message, category in hidden + kept:
                rank_zero_warn(message, category=category)
            rank_zero_info(
                "💡 Tip: For seamless cloud logging and experiment tracking, try installing litlogger"
            )
            rank_zero_info("💡 Tip: For seamless cloud uploads and versioning, try installing litmodels")
            rank_zero_info("GPU available: False, used: False")
            logger.warning("litlogger failed to start")  # not an advert: a warning stays
        assert sorted(str(w.message) for w in caught) == sorted(m for m, _ in kept)
        assert records == ["GPU available: False, used: False", "litlogger failed to start"]
    finally:
        logger.removeHandler(handler)
        logger.filters[:] = old_filters


# ------------------------------------------------------------------------------------------ package names
def test_package_names_are_lazy_and_importing_changes_no_filters():
    """Package-level names import on first use; importing the library (unlike the CLI) installs no filters."""
    code = (
        "import sys\n"
        "import lora_hyper.data_modules as dm, lora_hyper.callbacks as cb\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'transformers'))\n"
        "heavy += sorted(m for m in sys.modules if m.startswith(('lora_hyper.data_modules.', 'lora_hyper.callbacks.')))\n"
        "assert not heavy, heavy\n"
        "from lora_hyper.data_modules import NIAHDataModule, DocumentQADataModule, TaskCorpusDataModule\n"
        "from lora_hyper.data_modules import LoRALibraryDataModule\n"
        "from lora_hyper.callbacks import NIAHEvaluation, ZeroShotTaskEvaluation, NeedleCurriculum, ChunkHealthProbe\n"
        "from lora_hyper.data_modules.niah import NIAHDataModule as direct\n"
        "assert NIAHDataModule is direct and ChunkHealthProbe.__module__ == 'lora_hyper.callbacks.chunk_health'\n"
        "assert TaskCorpusDataModule.__module__ == 'lora_hyper.data_modules.task_sampler'\n"
        "assert {'NIAHDataModule', 'LoRALibraryDataModule'} <= set(dm.__all__) and 'NeedleCurriculum' in dir(cb)\n"
        "try:\n    dm.Nope\nexcept AttributeError as e:\n    assert 'Nope' in str(e)\nelse:\n    raise SystemExit(1)\n"
        "import warnings, logging, lora_hyper.progress\n"
        "assert not [f for f in warnings.filters if f[1] is not None and 'eval mode' in f[1].pattern]\n"
        "assert not logging.getLogger('lightning.pytorch.utilities.rank_zero').filters\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------------------ evaluations
class _ScriptedT2L:
    """Stands in for TextToLoRAModule: counts the answers it is asked for."""

    training = True

    def __init__(self) -> None:
        self.answers = 0

    def eval(self):
        self.training = False

    def train(self, mode: bool = True):
        self.training = mode

    def generate_lora(self, descriptions):
        return None

    def generate(self, prompts, adapters=None, system=None, max_new_tokens=32, share_adapters=False):
        self.answers += len(prompts)
        return ["?"] * len(prompts)


def test_zero_shot_final_evaluation_is_announced_bounded_and_shown_per_task(capsys, tmp_path):
    from lora_hyper.callbacks import ZeroShotTaskEvaluation
    from lora_hyper.data_modules.task_corpus import TaskCorpus

    corpus = TaskCorpus.load("builtin")  # 8 held-out tasks, 32 seen
    callback = ZeroShotTaskEvaluation(every_n_steps=0, output_dir=str(tmp_path), max_new_tokens=4)
    trainer = SimpleNamespace(
        global_step=5,
        is_global_zero=True,
        loggers=[],
        callback_metrics={},
        datamodule=SimpleNamespace(corpus=corpus),
    )
    module = _ScriptedT2L()
    callback.on_fit_end(trainer, module)
    out = capsys.readouterr().out.splitlines()
    # 16 tasks x 8 examples x (2 descriptions + base + 2 with description) = 640 answers > 256: 3 examples each.
    assert out[0].startswith("[zero-shot] final evaluation at step 5: 16 tasks (8 seen, 8 held out) x 3 test")
    assert f": {module.answers} answers of <= 4 tokens" in out[0] and module.answers == 16 * 3 * 5
    assert (
        len([line for line in out if re.match(r"\[zero-shot\] \d+/16 (seen|held_out) \w+: t2l", line)]) == 16
    )
    assert out[-1].startswith("[zero-shot] done in")
    unbounded = ZeroShotTaskEvaluation(max_answers=None, max_tasks=1, examples_per_task=2)
    assert unbounded.examples_per_task_now(corpus) == 2


class _FakeD2L(torch.nn.Module):
    """Stands in for DocToLoRAModule in ``evaluate_niah``: always finds the needle."""

    def __init__(self) -> None:
        super().__init__()
        from lora_hyper.testing import make_tiny_tokenizer

        self.tokenizer = make_tiny_tokenizer()
        self.native_window = 256

    def internalize(self, docs, chunk_length=None, rank_budget=None):
        return docs

    def generate(self, questions, adapters, max_new_tokens=8):
        return [re.search(r"magic number is (\d{4})", doc).group(1) for doc in adapters]


def test_niah_final_evaluation_is_announced_with_a_line_per_bin(capsys, tmp_path):
    from lora_hyper.callbacks import NIAHEvaluation

    callback = NIAHEvaluation(bins=[32, "1x"], samples_per_bin=2, batch_size=2, output_dir=str(tmp_path))
    trainer = SimpleNamespace(global_step=7, is_global_zero=True, loggers=[], callback_metrics={})
    callback.on_fit_end(trainer, _FakeD2L())
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[NIAH] final evaluation at step 7: 2 length bins (32, 1x) x 2 haystacks = 4")
    assert re.match(r"\[NIAH\] bin 1/2 32 \(32 tokens\): accuracy 1\.00 on 2 haystacks", out[1]), out
    assert re.match(r"\[NIAH\] bin 2/2 1x \(256 tokens\): accuracy 1\.00 on 2 haystacks", out[2]), out


# ------------------------------------------------------------------------------------------ the CLI
RECIPE = """\
seed_everything: 0
model:
  class_path: lora_hyper.modules.d2l.DocToLoRAModule
  init_args: {{base_model: {model}, lora: {{rank: 4}},
              perceiver: {{latent_dim: 32, n_latents: 8, n_blocks: 1, n_heads: 4}},
              runtime: {{attn_implementation: sdpa}}}}
data:
  class_path: lora_hyper.data_modules.NIAHDataModule
  init_args: {{base_model: {model}, train_lengths: [16, 48], val_bins: [], batch_size: 2}}
trainer: {{accelerator: cpu, devices: 1, max_steps: 4, log_every_n_steps: 2, logger: false,
          enable_checkpointing: false, default_root_dir: out}}
"""


@pytest.mark.slow
def test_cli_fit_prints_plain_lines_without_noise_when_stdout_is_a_file(tiny_llama_dir, tmp_path):
    (tmp_path / "recipe.yaml").write_text(RECIPE.format(model=tiny_llama_dir))
    proc = subprocess.run(
        [sys.executable, "-m", "lora_hyper", "fit", "--config", "recipe.yaml"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = [line.split("  ")[0] for line in proc.stdout.splitlines() if line.startswith("step ")]
    assert steps == ["step 1/4", "step 2/4", "step 4/4"], proc.stdout
    assert "Epoch" not in proc.stdout and "it/s v_num" not in proc.stdout
    for noise in ("💡", "litlogger", "eval mode", "Total length of `list`", "LeafSpec", "Loading weights"):
        assert noise not in proc.stderr, proc.stderr
