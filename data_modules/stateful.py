"""ResumableDataLoader: a DataLoader whose place in the epoch is saved in checkpoints, for exact mid-epoch resume.

Lightning saves ``state_dict()`` of every training loader that has ``state_dict``/``load_state_dict`` (the
``combined_loader`` entry of a checkpoint's ``loops`` state) and calls ``load_state_dict`` on resume before the
first batch, so a resumed run draws exactly the batches the interrupted run had not consumed yet (and Lightning
does not warn that the dataloader is not resumable). The state is the number of batches yielded in the current
epoch and, when the loader has a ``generator`` (seeded shuffling), that generator's state when the epoch's
indices were drawn.

Skipping happens on the index sampler: the consumed batches' indices are drawn and dropped, their data is never
loaded; worker processes only ever see the remaining indices. Datasets must not depend on worker RNG seeds
(ours seed every example by its index).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import torch
from torch.utils.data import DataLoader

__all__ = ["ResumableDataLoader"]


class _SkippingSampler:
    """The loader's index sampler: drops the first ``skip`` batches of indices and records the shuffle state."""

    def __init__(self, base: Any, generator: torch.Generator | None) -> None:
        self.base = base
        self.generator = generator
        self.skip = 0
        self.restore_state: torch.Tensor | None = None  # set on the generator before the next epoch's indices
        self.epoch_state: torch.Tensor | None = None  # the generator's state when this epoch's indices began

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self) -> Iterator[Any]:
        return self._indices(self.skip)

    def _indices(self, skip: int) -> Iterator[Any]:
        # A generator function: nothing runs until the first index is requested, i.e. after DataLoader drew its
        # worker base seed, so the shuffle permutation comes from the same generator state in every run.
        if self.generator is not None:
            if self.restore_state is not None:
                self.generator.set_state(self.restore_state)
                self.restore_state = None
            self.epoch_state = self.generator.get_state()
        yield from islice(iter(self.base), skip, None)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` with ``state_dict``/``load_state_dict``: Lightning resumes it mid-epoch, exactly.

    Same constructor as ``DataLoader`` (so Lightning can re-create it, e.g. to insert a distributed sampler).
    Each ``iter()`` starts an epoch; the first one after ``load_state_dict`` skips the batches the saved run had
    already consumed. A state saved at the end of an epoch makes the next ``iter()`` start the following epoch.
    """

    _skipper: _SkippingSampler | None = None
    _pending_skip: int = 0
    _yielded: int = 0

    @property
    def _index_sampler(self) -> Any:
        """The ``DataLoader`` index sampler, wrapped once (worker iterators keep the wrapper)."""
        base = super()._index_sampler
        if self._skipper is None or self._skipper.base is not base:
            self._skipper = _SkippingSampler(base, self.generator)
        return self._skipper

    def __iter__(self) -> Iterator[Any]:
        skip, self._pending_skip = self._pending_skip, 0
        self._index_sampler.skip = skip
        self._yielded = skip
        return self._count(super().__iter__())

    def _count(self, iterator: Iterator[Any]) -> Iterator[Any]:
        for batch in iterator:
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Batches consumed in the current epoch and the shuffle generator's state (epoch start and now)."""
        state: dict[str, Any] = {"batches": int(self._yielded)}
        if self.generator is not None:
            state["generator_now"] = self.generator.get_state()
            epoch_state = self._index_sampler.epoch_state
            if epoch_state is not None:
                state["generator_epoch_start"] = epoch_state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next ``iter()`` continue the saved epoch, or start the next one if the saved epoch had ended."""
        batches = int(state.get("batches", 0))
        try:
            finished = batches >= len(self)
        except TypeError:  # no length: an epoch never "ends" by count
            finished = False
        if finished:
            self._pending_skip = 0
            now = state.get("generator_now")
            if self.generator is not None and now is not None:
                if self.persistent_workers and self.num_workers > 0:
                    self._index_sampler.restore_state = now  # a kept worker iterator draws no new base seed
                else:
                    self.generator.set_state(now)
            return
        self._pending_skip = batches
        self._index_sampler.restore_state = state.get("generator_epoch_start")
