"""Kill -9 a ``lora-hyper fit`` after its step-4 checkpoint, rerun it with ``--ckpt_path last``: exact resume.

What a user does: a recipe, a run killed hard (no clean-up), the same command plus ``--ckpt_path last``. The
resumed run must not warn that the training dataloader is not resumable, and its final hypernetwork weights
must equal, bit for bit, those of an uninterrupted run of the same recipe.

CSV logs: the resumed run writes the next ``CSVLogger`` version (``version_1``), the killed run's log stays in
``version_0``. Reusing a version is not an option: Lightning deletes an existing ``metrics.csv`` when a logger
reopens its version, which would lose the killed run's curve.

The fast tests below check ``ResumableDataLoader`` alone: resumed from a checkpoint of every step (mid-epoch and
end of epoch, over several epochs, ``EpochSampler`` or seeded shuffling), a run sees exactly the batches the
uninterrupted run saw after that step, without the not-resumable warning; and its state round-trips with
worker processes.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch

from lora_hyper.testing import save_tiny_llama

RECIPE = """\
# Tiny Doc-to-LoRA NIAH recipe for the kill -9 resume test (a CPU-second version of recipes/quickstart.yaml).
# Checkpoints every 2 steps plus last.ckpt, in a fixed folder so that `--ckpt_path last` finds them from the
# rerun. Metrics are flushed every step; a resumed run logs to the next CSV version (version_1), the killed
# run's metrics stay in version_0 (Lightning would delete a reused version's metrics.csv).
seed_everything: 0
model:
  class_path: lora_hyper.modules.d2l.DocToLoRAModule
  init_args:
    base_model: {model}
    lora: {{rank: 4}}
    perceiver: {{latent_dim: 32, n_latents: 8, n_blocks: 1, n_heads: 4}}
    optim: {{lr: 1.0e-2}}
    runtime: {{attn_implementation: sdpa}}
data:
  class_path: lora_hyper.data_modules.niah.NIAHDataModule
  init_args:
    base_model: ${{...model.init_args.base_model}}
    train_lengths: [16, 48]
    val_bins: []
    batch_size: 2
    max_chunks: 2
    seed: 3
trainer:
  accelerator: cpu
  devices: 1
  max_steps: 8
  log_every_n_steps: 1
  default_root_dir: out
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args:
      save_dir: out
      name: logs
      flush_logs_every_n_steps: 1
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args:
        dirpath: out/checkpoints
        every_n_train_steps: 2
        save_top_k: -1
        save_last: true
"""

NOT_RESUMABLE = "not resumable"


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def _fit(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lora_hyper", "fit", "--config", "recipe.yaml", *extra],
        cwd=run_dir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _saved_step_4(ckpts: Path) -> bool:
    """The step-4 checkpoint and the ``last.ckpt`` written right after it are on disk (both saved atomically)."""
    step4, last = ckpts / "epoch=0-step=4.ckpt", ckpts / "last.ckpt"
    try:
        return last.stat().st_mtime_ns >= step4.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def _hypernet(ckpt: Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["global_step"] == 8, state["global_step"]
    return {k: v for k, v in state["state_dict"].items() if k.startswith("hypernet.")}


def _steps(metrics: Path) -> set[int]:
    with open(metrics, newline="") as f:
        return {int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")}


@pytest.mark.slow
def test_kill_9_then_resume_last_matches_uninterrupted_run(tmp_path):
    model = save_tiny_llama(tmp_path / "tiny")
    runs = {}
    for name in ("full", "killed"):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        (runs[name] / "recipe.yaml").write_text(RECIPE.format(model=model))

    full = _fit(runs["full"])
    assert full.returncode == 0, full.stderr[-3000:]

    run = runs["killed"]
    ckpts = run / "out" / "checkpoints"
    with open(run / "stdout.txt", "w") as out, open(run / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lora_hyper", "fit", "--config", "recipe.yaml"],
            cwd=run,
            env=_env(),
            stdout=out,
            stderr=err,
        )
        deadline = time.monotonic() + 120
        while not _saved_step_4(ckpts):
            assert proc.poll() is None, (
                f"fit ended before its step-4 checkpoint:\n{(run / 'stderr.txt').read_text()}"
            )
            assert time.monotonic() < deadline, "no step-4 checkpoint after 120 s"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert killed_at in (4, 6), f"the run was not interrupted mid-training (last.ckpt at step {killed_at})"

    resumed = _fit(run, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert NOT_RESUMABLE not in resumed.stderr, resumed.stderr[-3000:]
    assert f"resumed at step {killed_at}/8" in resumed.stdout and "step 8/8" in resumed.stdout, resumed.stdout

    a, b = _hypernet(runs["full"] / "out" / "checkpoints" / "last.ckpt"), _hypernet(ckpts / "last.ckpt")
    assert a and a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed weights differ from the uninterrupted run's: {different[:5]}"

    logs = run / "out" / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["version_0", "version_1"]
    before, after = _steps(logs / "version_0" / "metrics.csv"), _steps(logs / "version_1" / "metrics.csv")
    assert before and max(before) < 8 and min(before) == 0
    assert after == set(range(killed_at, 8)), after  # the resumed run logs exactly the steps it trained


# ------------------------------------------------------------------------------------------ the loader alone
class _EpochItems(torch.utils.data.Dataset):
    """Three items whose values tell the epoch (set by ``EpochSampler.set_epoch``) and the index."""

    epoch = 0

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([100.0 * self.epoch + i])


class _Recorder(L.LightningModule):
    """Records every training batch; ``shuffle`` picks a seeded shuffling loader, else an ``EpochSampler`` one."""

    def __init__(self, shuffle: bool) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.shuffle = shuffle
        self.seen: list[list[float]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch.view(-1).tolist())
        return ((self.w - batch.float().mean()) ** 2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        from lora_hyper.data_modules.stateful import ResumableDataLoader
        from lora_hyper.data_modules.task_sampler import EpochSampler, _identity

        if self.shuffle:  # 4 batches an epoch, a new permutation each epoch
            generator = torch.Generator().manual_seed(0)
            return ResumableDataLoader(list(range(7)), batch_size=2, shuffle=True, generator=generator)
        items = _EpochItems()
        return ResumableDataLoader(items, batch_size=None, sampler=EpochSampler(items), collate_fn=_identity)


def _record(root: Path, shuffle: bool, ckpt_path: str | None = None, every: int | None = None):
    from lightning.pytorch.callbacks import ModelCheckpoint

    module = _Recorder(shuffle)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=9,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=bool(every),
        callbacks=[ModelCheckpoint(dirpath=root, every_n_train_steps=every, save_top_k=-1)] if every else [],
        default_root_dir=root,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, ckpt_path=ckpt_path)
    return module.seen, [str(w.message) for w in caught if NOT_RESUMABLE in str(w.message)]


@pytest.mark.parametrize("shuffle", [False, True], ids=["epoch_sampler", "seeded_shuffle"])
def test_resumable_loader_continues_from_every_step_across_epochs(tmp_path, shuffle):
    full, _ = _record(tmp_path / "full", shuffle)
    _record(tmp_path / "saved", shuffle, every=1)
    for step in range(1, 9):  # mid-epoch and end-of-epoch checkpoints, over three epochs
        ckpt = next((tmp_path / "saved").glob(f"*step={step}.ckpt"))
        resumed, warned = _record(tmp_path / "resumed", shuffle, ckpt_path=str(ckpt))
        assert resumed == full[step:], (step, full, resumed)
        assert not warned


@pytest.mark.parametrize("workers", [0, 2])
def test_resumable_loader_state_round_trip_with_workers(workers):
    from lora_hyper.data_modules.stateful import ResumableDataLoader

    def loader():
        generator = torch.Generator().manual_seed(0)
        kwargs = {"num_workers": workers, "persistent_workers": workers > 0}
        return ResumableDataLoader(list(range(10)), batch_size=3, shuffle=True, generator=generator, **kwargs)

    first = loader()
    list(first)  # epoch 0
    seen, state = [], None
    for i, batch in enumerate(first):  # epoch 1, saved after two batches
        seen.append(batch.tolist())
        if i == 1:
            state = first.state_dict()
    assert state["batches"] == 2 and len(first) == 4
    following = [b.tolist() for b in first]  # epoch 2
    again = loader()
    again.load_state_dict(state)
    assert [b.tolist() for b in again] == seen[2:]
    assert [b.tolist() for b in again] == following
