"""NIAHDataModule: needle-in-a-haystack documents in the Doc-to-LoRA batch contract, generated on the fly by seed."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from .doc_batch import DocItem, DocQACollator, chunk_count_weights, sample_n_chunks
from .niah_prose import TRAIN_PROSE_SENTENCES
from .niah_protocol import (
    DEPTH_BINS,
    FILLER,
    NEEDLE_TEMPLATE,
    NIAH_QUESTION,
    QUESTION_VARIANTS,
    NIAHExample,
    balanced_depth,
    draw_needle_number,
    example_rng,
    extract_number,
    make_niah_example,
    needle_sentence,
    niah_examples,
    resolve_length,
)
from .stateful import ResumableDataLoader

__all__ = [
    "DEPTH_BINS",
    "FILLER",
    "NEEDLE_TEMPLATE",
    "NIAH_QUESTION",
    "NIAHDataModule",
    "NIAHExample",
    "extract_number",
    "make_niah_example",
    "niah_examples",
    "resolve_length",
]


PHASE_FIELDS = (
    "train_lengths",
    "prose_prob",
    "prose_lengths",
    "repeated_digit_prob",
    "long_prob",
    "long_lengths",
    "max_chunk_tokens",
    "max_chunks",
)  # the haystack-mix fields a phase may change (attributes of NIAHTrainDataset under the same names)


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is a whole number (not a bool, a string or a fraction), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _check_mix(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate the haystack-mix fields in ``values`` (data-module names) and return them typed: length pairs as
    int tuples, probabilities as floats, counts as ints (so a bad phase fails here, not hours into a run)."""
    out = dict(values)
    for name, value in values.items():
        if name.endswith("_lengths"):
            if value is None and name != "train_lengths":  # optional ranges: None falls back to train_lengths
                continue
            pair = [_whole(v) for v in value] if isinstance(value, (list, tuple)) else []
            if len(pair) != 2 or None in pair or not 1 <= pair[0] <= pair[1]:
                raise ValueError(
                    f"{where}{name} must be [min, max] token counts with 1 <= min <= max, got {value!r}."
                )
            out[name] = (pair[0], pair[1])
        elif name.endswith("_prob"):
            if value is None and name == "repeated_digit_prob":  # None: uniform numbers
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{where}{name} must be a number in [0, 1], got {value!r}.")
            out[name] = float(value)
        else:  # max_chunk_tokens, max_chunks
            count = _whole(value)
            if count is None or count < 1:
                raise ValueError(f"{where}{name} must be a whole number >= 1, got {value!r}.")
            out[name] = count
    return out


def _check_phases(phases: Sequence[Mapping[str, Any]] | None, mix: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate ``phases`` against the base ``mix``: known fields, increasing start steps, long lengths known."""
    if mix["long_prob"] > 0 and mix["long_lengths"] is None:
        raise ValueError("long_prob > 0 needs long_lengths: [min, max] tokens of the long filler haystacks.")
    if phases is not None and (isinstance(phases, (str, Mapping)) or not isinstance(phases, Sequence)):
        raise ValueError(
            f"phases must be a list of mappings (start_step + fields), got {type(phases).__name__}."
        )
    checked: list[dict[str, Any]] = []
    current, last_start = dict(mix), 0
    for i, phase in enumerate(phases or []):
        where = f"phases[{i}]."
        if not isinstance(phase, Mapping) or "start_step" not in phase:
            raise ValueError(f"phases[{i}] must be a mapping with start_step and the fields it changes.")
        unknown = sorted(set(phase) - {"start_step", *PHASE_FIELDS})
        if unknown:
            raise ValueError(
                f"{where}{unknown[0]} is not a phase field; use one of: {', '.join(PHASE_FIELDS)}."
            )
        start = phase["start_step"]
        if isinstance(start, bool) or not isinstance(start, int) or start <= last_start:
            after = "the previous phase's start" if checked else "0"
            raise ValueError(
                f"{where}start_step must be an integer above {last_start} ({after}), got {start!r}."
            )
        changes = _check_mix({k: v for k, v in phase.items() if k != "start_step"}, where)
        current.update(changes)
        if current["long_prob"] > 0 and current["long_lengths"] is None:
            raise ValueError(
                f"{where}long_prob > 0 needs long_lengths: [min, max] tokens of the long haystacks."
            )
        checked.append({"start_step": start, **changes})
        last_start = start
    return checked


def _questions(rng: random.Random, k: int) -> list[str]:
    """The reference question first, then ``k - 1`` paraphrases (more ways to ask, same answer)."""
    return [NIAH_QUESTION] + rng.sample(list(QUESTION_VARIANTS), k - 1)


class NIAHTrainDataset(Dataset):
    """``length`` training haystacks, example ``i`` built from its own seed (index-seeded, so any order or worker)."""

    def __init__(
        self,
        tokenizer: Any,
        length: int,
        seed: int,
        lengths: tuple[int, int],
        questions_per_doc: int = 1,
        max_chunks: int = 1,
        min_chunk_tokens: int = 25,
        needle_only_prob: float = 0.0,
        offset: int = 0,
        chunk_distribution: str = "reference",
        prose_prob: float = 0.0,
        repeated_digit_prob: float | None = None,
        prose_lengths: tuple[int, int] | None = None,
        max_chunk_tokens: int = 512,
        long_prob: float = 0.0,
        long_lengths: tuple[int, int] | None = None,
        long_start: int = 0,
        phases: Sequence[tuple[int, dict[str, Any]]] = (),
    ) -> None:
        self.tokenizer = tokenizer
        self.length = length
        self.seed = seed
        self.train_lengths = lengths
        self.questions_per_doc = questions_per_doc
        self.max_chunks = max_chunks
        self.min_chunk_tokens = min_chunk_tokens
        self.needle_only_prob = needle_only_prob
        self.offset = offset
        self.chunk_distribution = chunk_distribution
        self.prose_prob = prose_prob
        self.repeated_digit_prob = repeated_digit_prob
        self.prose_lengths = prose_lengths
        self.max_chunk_tokens = max_chunk_tokens
        self.long_prob = long_prob
        self.long_lengths = long_lengths
        self.long_start = long_start
        self.phases = sorted(phases, key=lambda p: p[0])  # (first sample index, the fields it changes)

    def __len__(self) -> int:
        return self.length

    def settings(self, index: int) -> dict[str, Any]:
        """The mix fields in force for sample ``index``: the defaults, then every phase started by then."""
        values = {name: getattr(self, name) for name in PHASE_FIELDS}
        for start, changes in self.phases:
            if index >= start:
                values.update(changes)
        return values

    def __getitem__(self, i: int) -> DocItem:
        index = (self.offset + i) % self.length
        mix = self.settings(index)
        rng = example_rng(self.seed, "train", index)
        n_tokens = rng.randint(*mix["train_lengths"])
        needle_only = rng.random() < self.needle_only_prob
        depth = balanced_depth(index, rng)
        prose = mix["prose_prob"] > 0 and rng.random() < mix["prose_prob"]
        if prose and mix["prose_lengths"] is not None:  # an extra draw only then: older streams are unchanged
            n_tokens = rng.randint(*mix["prose_lengths"])
        long_on = mix["long_prob"] > 0 and index >= self.long_start
        if not prose and long_on and rng.random() < mix["long_prob"]:  # extra draws only when on
            n_tokens = rng.randint(*mix["long_lengths"])
        number = None  # uniform, drawn inside make_niah_example (the stream of earlier runs, unchanged)
        if mix["repeated_digit_prob"] is not None:
            number = draw_needle_number(rng, mix["repeated_digit_prob"])
        ex = make_niah_example(
            self.tokenizer,
            n_tokens,
            depth,
            rng,
            number=number,
            haystack="prose" if prose else "repeat",
            sentences=TRAIN_PROSE_SENTENCES if prose else None,
        )
        if needle_only:
            context = needle_sentence(int(ex.answer))
            ex = NIAHExample(context, ex.question, ex.answer, len(self.tokenizer(context)["input_ids"]), 0.0)
        k = sample_n_chunks(
            rng,
            mix["max_chunks"],
            ex.n_tokens,
            self.min_chunk_tokens,
            self.chunk_distribution,
            mix["max_chunk_tokens"],
        )
        qas = [(q, ex.answer) for q in _questions(rng, self.questions_per_doc)]
        meta = {"n_tokens": ex.n_tokens, "depth": ex.depth, "needle_only": needle_only, "prose": prose}
        return DocItem(ex.context, qas, doc_id=f"niah-train-{index}", n_chunks=k, meta=meta)


class NIAHDataModule(L.LightningDataModule):
    """The reference NIAH protocol: filler haystacks with a "special magic number" needle, in D2L batches.

    Training contexts have ``train_lengths`` tokens (uniform between min and max) and may be cut into K chunks
    (K from ``chunk_distribution`` over ``1..max_chunks``); validation and test use fixed length bins and ``eval_chunk_length``.
    Every example is a function of ``seed`` and its index, so runs are reproducible; the training loader is a
    ``ResumableDataLoader``, so a run resumed from a mid-epoch checkpoint continues with the next unseen batch.

    Args:
        base_model: the base model whose tokenizer measures lengths and formats prompts.
        train_lengths: min and max training context length in tokens (reference: 32 and 256).
        val_bins: validation lengths: token counts (``256``, ``"4K"``) or native-window multiples (``"2x"``).
        test_bins: test lengths, same forms as ``val_bins``.
        train_samples: training examples per epoch (generated on the fly; make it large for long runs).
        val_samples_per_bin: validation haystacks per length bin.
        test_samples_per_bin: test haystacks per length bin.
        batch_size: documents per batch.
        questions_per_doc: questions per document: the reference question, then paraphrases (at most 5).
        seed: seed of every generated example.
        max_chunks: training samples K in 1..max_chunks chunks per context (reference: 8).
        min_chunk_tokens: smallest training chunk; caps K at ``ceil(len / min_chunk_tokens)`` (reference: 25).
        chunk_distribution: ``reference`` (P(K=1)=0.5, P(K=2)=0.125, the rest evenly over 3..max_chunks) or
            ``uniform`` over 1..max_chunks.
        eval_chunk_length: chunk length for validation and test contexts (reference: 1024).
        needle_only_prob: fraction of training contexts that are the needle sentence alone (a curriculum aid).
        encoder_model: the model's ``encoder.model`` when the context encoder is not the base model: contexts
            are chunked with its tokenizer (haystack lengths stay in base-model tokens).
        prose_prob: fraction of training haystacks built from varied sentences (``TRAIN_PROSE_SENTENCES``,
            disjoint from the evaluation prose) instead of the repeated filler paragraph.
        repeated_digit_prob: fraction of training needles with two equal adjacent digits (7399, 8111); ``None``
            (default) draws them uniformly (27.1% repeat). Trained models miss these most: they read 7399 back
            as 7933 and 8111 as 8195.
        prose_lengths: min and max length of the varied-prose training haystacks (default: ``train_lengths``).
            Models trained on prose of at most 256 tokens read a needle in a 1024-token prose chunk worse (0.80
            against 1.00 up to 512 tokens): the evaluation's chunks are 1024 tokens.
        max_chunk_tokens: largest training chunk; floors K at ``ceil(len / max_chunk_tokens)`` (reference: 512).
        long_prob: fraction of the filler (not prose) training haystacks whose length comes from
            ``long_lengths`` instead of ``train_lengths`` (default 0: none). A model trained on chunks of at most
            256 tokens reads a needle in a 1024-token evaluation chunk worse (0.70 against 0.95 at 512): a few
            long single chunks teach that length without making every step expensive.
        long_lengths: min and max length of those long filler haystacks (required when ``long_prob`` > 0).
        long_start_step: the optimizer step (``samples_per_step()`` samples each) from which long haystacks
            appear: the short ones teach reading digits exactly at a third of the cost per step, the long ones the
            chunk length.
        phases: later training mixes in one run, each a mapping with ``start_step`` (the optimizer step it takes
            over from, ``samples_per_step()`` samples each) and any of ``train_lengths``, ``prose_prob``,
            ``prose_lengths``, ``repeated_digit_prob``, ``long_prob``, ``long_lengths``, ``max_chunk_tokens``,
            ``max_chunks``; a phase changes only the fields it names and keeps the earlier ones (``prose_lengths:
            null`` goes back to ``train_lengths``). Start steps are >= 1 and increasing; a phase's ``long_prob``
            still waits for ``long_start_step``. What the shipped model learnt in separate stages (digits on short
            haystacks, then long chunks, prose, repeated digits) in one recipe. Samples are still a function of seed
            and index, so resume stays exact.
        with_teacher: add ``teacher_*`` rows (haystack in the prompt) to training and validation batches, for
            the distill objective (test batches never carry them).
        system_prompt: system message of chunk wrappers and question rows: ``""`` (default, the reference's
            empty system message) or ``None`` (the chat template's default prompt). Must match the model's.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        base_model: str = "smollm2-135m-instruct",
        train_lengths: tuple[int, int] = (32, 256),
        val_bins: Sequence[int | str] = (256, 1024),
        test_bins: Sequence[int | str] = (256, 1024, 4096, "1x"),
        train_samples: int = 1_000_000,
        val_samples_per_bin: int = 20,
        test_samples_per_bin: int = 20,
        batch_size: int = 4,
        questions_per_doc: int = 1,
        seed: int = 0,
        max_chunks: int = 1,
        min_chunk_tokens: int = 25,
        eval_chunk_length: int = 1024,
        needle_only_prob: float = 0.0,
        with_teacher: bool = False,
        num_workers: int = 0,
        chunk_distribution: str = "reference",
        system_prompt: str | None = "",
        prose_prob: float = 0.0,
        encoder_model: str | None = None,
        repeated_digit_prob: float | None = None,
        prose_lengths: tuple[int, int] | None = None,
        max_chunk_tokens: int = 512,
        long_prob: float = 0.0,
        long_lengths: tuple[int, int] | None = None,
        long_start_step: int = 0,
        phases: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= questions_per_doc <= 1 + len(QUESTION_VARIANTS):
            raise ValueError(
                f"questions_per_doc must be in 1..{1 + len(QUESTION_VARIANTS)}, got {questions_per_doc}."
            )
        mix = _check_mix(
            {
                "train_lengths": train_lengths,
                "prose_prob": prose_prob,
                "prose_lengths": prose_lengths,
                "repeated_digit_prob": repeated_digit_prob,
                "long_prob": long_prob,
                "long_lengths": long_lengths,
                "max_chunk_tokens": max_chunk_tokens,
                "max_chunks": max_chunks,
            },
            "",
        )
        if not 0.0 <= needle_only_prob <= 1.0:
            raise ValueError(f"needle_only_prob must be in [0, 1], got {needle_only_prob}.")
        if long_start_step < 0:
            raise ValueError(f"long_start_step must be >= 0, got {long_start_step}.")
        for name, value in (("train_samples", train_samples), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        self.phases = _check_phases(phases, mix)
        self.base_model = base_model
        self.train_lengths = mix["train_lengths"]
        self.prose_lengths = mix["prose_lengths"]
        self.max_chunk_tokens = max_chunk_tokens
        self.long_prob = long_prob
        self.long_lengths = mix["long_lengths"]
        self.long_start_step = long_start_step
        self.val_bins = list(val_bins)
        self.test_bins = list(test_bins)
        self.train_samples = train_samples
        self.val_samples_per_bin = val_samples_per_bin
        self.test_samples_per_bin = test_samples_per_bin
        self.batch_size = batch_size
        self.questions_per_doc = questions_per_doc
        self.seed = seed
        self.max_chunks = max_chunks
        self.min_chunk_tokens = min_chunk_tokens
        self.eval_chunk_length = eval_chunk_length
        self.needle_only_prob = needle_only_prob
        self.prose_prob = prose_prob
        self.repeated_digit_prob = repeated_digit_prob
        self.encoder_model = encoder_model
        self.ctx_tokenizer: Any = None
        self.with_teacher = with_teacher
        self.num_workers = num_workers
        chunk_count_weights(max_chunks, chunk_distribution)  # validates the name
        self.chunk_distribution = chunk_distribution
        self.system_prompt = system_prompt
        self.tokenizer: Any = None
        self.native_window: int | None = None
        self.samples_seen = 0
        self._eval_items: dict[str, list[DocItem]] = {}

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        """Load the tokenizer and read the base model's native window (needed for ``"2x"`` bins)."""
        if self.tokenizer is not None:
            return
        from transformers import AutoConfig

        from lora_hyper.base_model import load_tokenizer, native_window, resolve_model_path

        self.tokenizer = load_tokenizer(self.base_model)
        self.native_window = native_window(AutoConfig.from_pretrained(resolve_model_path(self.base_model)))
        if self.encoder_model:
            from lora_hyper.encoders.models import load_encoder_tokenizer

            self.ctx_tokenizer = load_encoder_tokenizer(self.encoder_model)

    def bin_lengths(self, split: str) -> list[int]:
        """Token counts of the ``val`` or ``test`` bins."""
        bins = self.val_bins if split == "val" else self.test_bins
        return [resolve_length(b, self.native_window) for b in bins]

    def eval_items(self, split: str) -> list[DocItem]:
        """The fixed validation or test documents, bin by bin, depths balanced within each bin."""
        if split not in self._eval_items:
            self._require_setup()
            per_bin = self.val_samples_per_bin if split == "val" else self.test_samples_per_bin
            items = []
            for n in self.bin_lengths(split):
                for j, ex in enumerate(niah_examples(self.tokenizer, n, per_bin, self.seed, split)):
                    meta = {"n_tokens": ex.n_tokens, "depth": ex.depth, "bin": n}
                    items.append(
                        DocItem(ex.context, [(ex.question, ex.answer)], f"niah-{split}-{n}-{j}", None, meta)
                    )
            self._eval_items[split] = items
        return self._eval_items[split]

    def train_dataset(self) -> NIAHTrainDataset:
        """The on-the-fly training set, starting after the samples already consumed (resume)."""
        self._require_setup()
        return NIAHTrainDataset(
            self.tokenizer,
            self.train_samples,
            self.seed,
            self.train_lengths,
            self.questions_per_doc,
            self.max_chunks,
            self.min_chunk_tokens,
            self.needle_only_prob,
            offset=self.samples_seen % self.train_samples,
            chunk_distribution=self.chunk_distribution,
            prose_prob=self.prose_prob,
            repeated_digit_prob=self.repeated_digit_prob,
            prose_lengths=self.prose_lengths,
            max_chunk_tokens=self.max_chunk_tokens,
            long_prob=self.long_prob,
            long_lengths=self.long_lengths,
            long_start=self.long_start_step * self.samples_per_step(),
            phases=[
                (p["start_step"] * self.samples_per_step(), {k: v for k, v in p.items() if k != "start_step"})
                for p in self.phases
            ],
        )

    def samples_per_step(self) -> int:
        """Training samples one optimizer step consumes (batch x accumulation x ranks), what step counts mean."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return self.batch_size
        return self.batch_size * trainer.accumulate_grad_batches * trainer.world_size

    def _require_setup(self) -> None:
        if self.tokenizer is None:
            raise RuntimeError("Call NIAHDataModule.setup() first (Lightning does this for you).")

    # ------------------------------------------------------------------ loaders
    def _loader(self, dataset: Any, collator: DocQACollator, train: bool = False) -> DataLoader:
        return (ResumableDataLoader if train else DataLoader)(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        collator = DocQACollator(
            self.tokenizer, None, self.with_teacher, self.system_prompt, self.ctx_tokenizer
        )
        return self._loader(self.train_dataset(), collator, train=True)

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches, bin by bin; no loader (validation skipped) when ``val_bins`` is empty."""
        if not self.val_bins or self.val_samples_per_bin < 1:
            return []
        return self._loader(
            self.eval_items("val"),
            DocQACollator(
                self.tokenizer,
                self.eval_chunk_length,
                self.with_teacher,
                self.system_prompt,
                self.ctx_tokenizer,
            ),
        )

    def test_dataloader(self) -> DataLoader:
        collator = DocQACollator(
            self.tokenizer,
            self.eval_chunk_length,
            system_prompt=self.system_prompt,
            ctx_tokenizer=self.ctx_tokenizer,
        )
        return self._loader(self.eval_items("test"), collator)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Training samples consumed so far (optimizer steps x batch x accumulation x ranks), saved in checkpoints."""
        seen = self.samples_seen
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.global_step > 0:
            seen = trainer.global_step * self.samples_per_step()
        return {"samples_seen": int(seen), "seed": self.seed, "stateful_loader": True}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Old checkpoints (no loader state) resume by offsetting the stream; new ones via the loader's state."""
        if not state_dict.get("stateful_loader"):
            self.samples_seen = int(state_dict.get("samples_seen", 0))
