"""A task corpus: a folder of tasks, each with descriptions, a data source, a prompt template and a metric.

Layout (the format of the Text-to-LoRA Super-NaturalInstructions corpus)::

    <corpus>/held_out.yaml              optional: default list of held-out task names
    <corpus>/<task>/metadata.yaml       descriptions, source, prompt_template, response_field, ...
    <corpus>/<task>/data.jsonl          (when the source is a local JSONL file)

``metadata.yaml`` keys:

    descriptions     list[str]   natural-language descriptions of the task (required, non-empty); the
                                 evaluation descriptions are drawn from these
    training_descriptions
                     list[str]   optional: more descriptions that are only ever trained on (never held out
                                 for evaluation), e.g. extra paraphrases; appended to the training split
    source           str | dict  local JSONL path relative to the task folder, or a ``datasets`` spec
                                 ``{path, name, split, data_files, revision, filter, max_examples, ...}``
                                 (``ds_kwargs`` is accepted as an alias); a dict whose ``path`` is a local
                                 ``.jsonl`` file is read directly, with the same ``filter``/``max_examples``
    test_source      str | dict  optional test split source (same forms)
    test_fraction    float       without ``test_source``: the share of ``source`` kept for testing (0.1)
    prompt_template  str         ``str.format`` over record fields (default ``"{input}"``)
    response_field   str         record field holding the answer (default ``output``; a list takes its first)
    system_message   str         optional system turn
    metric           str         ``exact_match`` (default), ``exact_match_cased``, ``rougeL``
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BUILTIN = "builtin"
HELD_OUT_FILE = "held_out.yaml"
METADATA_FILE = "metadata.yaml"


# ------------------------------------------------------------------------------------------------ scoring
def _normalise(text: str, cased: bool) -> str:
    text = " ".join(str(text).split())
    text = text[:-1].rstrip() if text.endswith(".") else text
    return text if cased else text.casefold()


def _rouge_l(prediction: str, reference: str) -> float:
    pred, ref = prediction.casefold().split(), reference.casefold().split()
    if not pred or not ref:
        return float(pred == ref)
    prev = [0] * (len(ref) + 1)
    for p in pred:
        cur = [0]
        for j, r in enumerate(ref):
            cur.append(prev[j] + 1 if p == r else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


METRICS: dict[str, Callable[[str, str], float]] = {
    "exact_match": lambda p, r: float(_normalise(p, False) == _normalise(r, False)),
    "exact_match_cased": lambda p, r: float(_normalise(p, True) == _normalise(r, True)),
    "rougeL": _rouge_l,
}


def score(prediction: str, reference: str, metric: str = "exact_match") -> float:
    """Score one prediction in [0, 1]; exact matches ignore surrounding/repeated whitespace and a final full stop.

    ``exact_match`` also ignores case, ``exact_match_cased`` does not, ``rougeL`` is the LCS F1 of words.
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}: use one of {sorted(METRICS)}.")
    return METRICS[metric](prediction, reference)


# ------------------------------------------------------------------------------------------------ sources
def _read_jsonl(path: Path, task: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"Task {task!r}: data source {path} cannot be read (no such file).")
    records = []
    try:
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if line.strip():
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError(f"line {line_no} is not a JSON object")
                    records.append(record)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"Task {task!r}: data source {path} cannot be read: {e}.") from e
    return records


def _apply_filter(
    records: list[dict[str, Any]], where: dict[str, Any] | None, task: str
) -> list[dict[str, Any]]:
    if not where:
        return records
    if not isinstance(where, dict):
        raise ValueError(f"Task {task!r}: source 'filter' must map field -> value or list of values.")
    allowed = {k: set(v) if isinstance(v, list) else {v} for k, v in where.items()}
    return [r for r in records if all(r.get(k) in vals for k, vals in allowed.items())]


def _load_with_datasets(spec: dict[str, Any], folder: Path, task: str) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as e:
        raise ImportError(
            f"Task {task!r} reads a `datasets` source ({spec.get('path')!r}): pip install datasets"
        ) from e
    kwargs = dict(spec)
    kwargs.setdefault("split", "train")
    files = kwargs.get("data_files")
    if files is not None:

        def local(p: str) -> str:
            return str(folder / p) if (folder / p).exists() else p

        if isinstance(files, str):
            kwargs["data_files"] = local(files)
        elif isinstance(files, list):
            kwargs["data_files"] = [local(p) for p in files]
        elif isinstance(files, dict):
            kwargs["data_files"] = {
                k: local(v) if isinstance(v, str) else [local(p) for p in v] for k, v in files.items()
            }
    try:
        ds = datasets.load_dataset(**kwargs)
    except Exception as e:
        raise ValueError(
            f"Task {task!r}: data source {spec.get('path')!r} cannot be read: {e}".rstrip(".") + "."
        ) from e
    return [dict(r) for r in ds]


def load_records(source: str | dict[str, Any], folder: Path, task: str) -> list[dict[str, Any]]:
    """Records of one data source: a local JSONL path, or a ``datasets`` spec (optionally filtered/capped)."""
    if isinstance(source, str):
        source = {"path": source}
    if not isinstance(source, dict) or not source.get("path"):
        raise ValueError(f"Task {task!r}: a source is a JSONL path or a mapping with 'path', got {source!r}.")
    spec = dict(source)
    where, cap = spec.pop("filter", None), spec.pop("max_examples", None)
    local = folder / str(spec["path"])
    if str(spec["path"]).endswith((".jsonl", ".json")) and "data_files" not in spec:
        extra = set(spec) - {"path"}
        if extra:
            raise ValueError(
                f"Task {task!r}: a local JSONL source takes only path/filter/max_examples, not {sorted(extra)}."
            )
        records = _read_jsonl(local, task)
    else:
        records = _load_with_datasets(spec, folder, task)
    records = _apply_filter(records, where, task)
    return records[: int(cap)] if cap is not None else records


# ------------------------------------------------------------------------------------------------ tasks
@dataclass(frozen=True)
class TaskExample:
    """One example: the user prompt (template applied, no description) and the reference response."""

    prompt: str
    response: str


def pick_description(
    rng: random.Random, train: list[str], extra: list[str], extra_rng: random.Random | None
) -> str:
    """A uniform draw from ``train`` (which ends with the train-only ``extra``) that consumes ``rng`` exactly as a
    draw from ``train`` without ``extra`` would: the other draws of a batch (its examples) are the same with the
    extra descriptions on or off; ``extra_rng`` decides whether (and which) an extra one replaces it."""
    base = train[: len(train) - len(extra)] if extra else train
    choice = rng.choice(base)
    if extra and extra_rng is not None and extra_rng.random() * len(train) < len(extra):
        choice = extra_rng.choice(extra)
    return choice


def split_descriptions(
    name: str, descriptions: list[str], n_eval: int, seed: int
) -> tuple[list[str], list[str]]:
    """Deterministically hold ``n_eval`` descriptions out of training: ``(train, eval)``."""
    if n_eval < 0:
        raise ValueError(f"n_eval_descriptions must be >= 0, got {n_eval}.")
    if n_eval >= len(descriptions):
        raise ValueError(
            f"Task {name!r} has {len(descriptions)} descriptions; n_eval_descriptions={n_eval} leaves none for training."
        )
    order = list(range(len(descriptions)))
    random.Random(f"{seed}:{name}").shuffle(order)
    held = set(order[:n_eval])
    return [d for i, d in enumerate(descriptions) if i not in held], [
        d for i, d in enumerate(descriptions) if i in held
    ]


@dataclass
class Task:
    """One task of a corpus: descriptions (split into training and evaluation ones), data, prompt format, metric."""

    name: str
    folder: Path
    descriptions: list[str]
    train_descriptions: list[str]
    eval_descriptions: list[str]
    source: str | dict[str, Any]
    prompt_template: str = "{input}"
    response_field: str = "output"
    system_message: str | None = None
    metric: str = "exact_match"
    test_source: str | dict[str, Any] | None = None
    test_fraction: float = 0.1
    held_out: bool = False
    # the train-only ``training_descriptions`` that ``train_descriptions`` ends with (empty when they are off)
    extra_train_descriptions: list[str] = field(default_factory=list)
    _cache: dict[str, list[TaskExample]] = field(default_factory=dict, repr=False)

    @property
    def base_train_descriptions(self) -> list[str]:
        """The training split of ``descriptions``: ``train_descriptions`` without the train-only ones."""
        return self.train_descriptions[: len(self.train_descriptions) - len(self.extra_train_descriptions)]

    def _example(self, record: dict[str, Any]) -> TaskExample:
        try:
            prompt = self.prompt_template.format(**record)
        except KeyError as e:
            raise ValueError(
                f"Task {self.name!r}: prompt_template field {e} is not in the record fields {sorted(record)}."
            ) from None
        if self.response_field not in record:
            raise ValueError(
                f"Task {self.name!r}: response_field {self.response_field!r} is not in the record fields {sorted(record)}."
            )
        response = record[self.response_field]
        if isinstance(response, list):
            if not response:
                raise ValueError(f"Task {self.name!r}: a record has an empty {self.response_field!r} list.")
            response = response[0]
        return TaskExample(prompt=prompt, response=str(response))

    def examples(self, split: str = "train") -> list[TaskExample]:
        """The task's examples of ``split`` (``train`` or ``test``), loaded once and cached."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
        if split not in self._cache:
            records = load_records(self.source, self.folder, self.name)
            if self.test_source is not None:
                train, test = records, load_records(self.test_source, self.folder, self.name)
            else:
                order = list(range(len(records)))
                random.Random(f"split:{self.name}").shuffle(order)
                n_test = round(len(records) * self.test_fraction)
                test_ids = set(order[:n_test])
                train = [r for i, r in enumerate(records) if i not in test_ids]
                test = [r for i, r in enumerate(records) if i in test_ids]
            self._cache["train"] = [self._example(r) for r in train]
            self._cache["test"] = [self._example(r) for r in test]
            if not self._cache["train"]:
                raise ValueError(f"Task {self.name!r}: its data source has no training examples.")
        return self._cache[split]


def _training_descriptions(name: str, extra: Any, descriptions: list[str]) -> list[str]:
    """The optional train-only descriptions of a task, checked: strings, none repeating an evaluation candidate."""
    if extra is None:
        return []
    if not isinstance(extra, list) or not all(isinstance(d, str) and d.strip() for d in extra):
        raise ValueError(f"Task {name!r}: 'training_descriptions' must be a list of non-empty strings.")

    def key(d: str) -> str:  # two phrasings that differ only in case or spacing are one description
        return " ".join(d.casefold().split())

    pool = {key(d) for d in descriptions}
    repeated = [d for d in extra if key(d) in pool]
    if repeated:
        raise ValueError(
            f"Task {name!r}: training description {repeated[0]!r} is also under 'descriptions', where it may be "
            "held out for evaluation; list it once."
        )
    unique: dict[str, str] = {}
    for d in extra:
        unique.setdefault(key(d), d.strip())
    return list(unique.values())


def _read_metadata(folder: Path, n_eval: int, seed: int, with_training_descriptions: bool = True) -> Task:
    name = folder.name
    try:
        meta = yaml.safe_load((folder / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(
            f"Task {name!r}: {folder / METADATA_FILE} cannot be read: {e}".rstrip(".") + "."
        ) from e
    if not isinstance(meta, dict):
        raise ValueError(f"Task {name!r}: {folder / METADATA_FILE} must be a YAML mapping.")
    descriptions = meta.get("descriptions")
    if not isinstance(descriptions, list) or not [
        d for d in descriptions if isinstance(d, str) and d.strip()
    ]:
        raise ValueError(
            f"Task folder {folder} has no descriptions: metadata.yaml needs a non-empty 'descriptions' list."
        )
    if not all(isinstance(d, str) and d.strip() for d in descriptions):
        raise ValueError(f"Task {name!r}: every description must be a non-empty string.")
    descriptions = list(dict.fromkeys(d.strip() for d in descriptions))
    source = meta.get("source", meta.get("ds_kwargs"))
    if source is None:
        raise ValueError(f"Task {name!r}: metadata.yaml has no 'source' (a JSONL path or a datasets spec).")
    if isinstance(source, str) and not (folder / source).is_file():
        raise FileNotFoundError(
            f"Task {name!r}: data source {folder / source} cannot be read (no such file)."
        )
    metric = meta.get("metric", "exact_match")
    if metric not in METRICS:
        raise ValueError(f"Task {name!r}: unknown metric {metric!r}; use one of {sorted(METRICS)}.")
    test_fraction = float(meta.get("test_fraction", 0.1))
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"Task {name!r}: test_fraction must be in [0, 1), got {test_fraction}.")
    train_d, eval_d = split_descriptions(name, descriptions, n_eval, seed)
    extra = _training_descriptions(
        name, meta.get("training_descriptions"), descriptions
    )  # checked either way
    extra = extra if with_training_descriptions else []
    return Task(
        name=name,
        folder=folder,
        descriptions=descriptions,
        train_descriptions=train_d + extra,
        eval_descriptions=eval_d,
        extra_train_descriptions=extra,
        source=source,
        prompt_template=str(meta.get("prompt_template", "{input}")),
        response_field=str(meta.get("response_field", "output")),
        system_message=meta.get("system_message") or None,
        metric=metric,
        test_source=meta.get("test_source"),
        test_fraction=test_fraction,
    )


def builtin_corpus_path() -> Path:
    """Folder of the built-in procedurally generated corpus shipped with the package."""
    return Path(__file__).resolve().parent / "builtin_tasks"


def resolve_corpus_path(path: str) -> Path:
    """``"builtin"`` -> the packaged corpus; anything else is a folder path."""
    return builtin_corpus_path() if path == BUILTIN else Path(path).expanduser()


class TaskCorpus:
    """All tasks of a corpus folder, with the held-out (never trained on) tasks marked."""

    def __init__(self, root: Path, tasks: dict[str, Task], held_out: list[str]):
        self.root = root
        self.tasks = tasks
        self.held_out_tasks = list(held_out)
        self._index = {name: i for i, name in enumerate(sorted(tasks))}

    @classmethod
    def load(
        cls,
        path: str = BUILTIN,
        held_out_tasks: list[str] | None = None,
        n_eval_descriptions: int = 5,
        seed: int = 0,
        training_descriptions: bool = True,
    ) -> TaskCorpus:
        """Read every ``<path>/<task>/metadata.yaml``; ``held_out_tasks=None`` takes ``<path>/held_out.yaml``.

        ``training_descriptions=False`` ignores the tasks' train-only ``training_descriptions`` (to measure what
        they add); the evaluation descriptions are the same either way.
        """
        root = resolve_corpus_path(str(path))
        if not root.is_dir():
            raise FileNotFoundError(f"Task corpus {path!r} is not a directory.")
        folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / METADATA_FILE).is_file())
        if not folders:
            raise ValueError(f"Task corpus {root} is empty: no <task>/{METADATA_FILE} folders.")
        tasks = {f.name: _read_metadata(f, n_eval_descriptions, seed, training_descriptions) for f in folders}
        if held_out_tasks is None:
            default = root / HELD_OUT_FILE
            held_out_tasks = list(yaml.safe_load(default.read_text()) or []) if default.is_file() else []
        unknown = [t for t in held_out_tasks if t not in tasks]
        if unknown:
            raise ValueError(f"Unknown held-out task(s) {unknown} in corpus {root}.")
        for name in held_out_tasks:
            tasks[name].held_out = True
        if len(set(held_out_tasks)) == len(tasks):
            raise ValueError(f"Every task of corpus {root} is held out: nothing is left to train on.")
        return cls(root, tasks, list(dict.fromkeys(held_out_tasks)))

    @property
    def train_tasks(self) -> list[str]:
        """Names of the tasks used for training (sorted)."""
        return [n for n in sorted(self.tasks) if not self.tasks[n].held_out]

    def task_index(self, name: str) -> int:
        """Stable index of a task: its position among the corpus's sorted task names."""
        if name not in self._index:
            raise KeyError(f"Unknown task {name!r}; the corpus has {len(self._index)} tasks.")
        return self._index[name]

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"TaskCorpus({self.root}, {len(self.tasks)} tasks, held out {self.held_out_tasks})"


def __getattr__(name: str) -> Any:
    """Lazily re-export ``TaskCorpusDataModule`` (it lives in ``task_sampler.py``, which imports this module)."""
    if name == "TaskCorpusDataModule":
        from lora_hyper.data_modules.task_sampler import TaskCorpusDataModule

        return TaskCorpusDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "METRICS",
    "Task",
    "TaskCorpus",
    "TaskExample",
    "builtin_corpus_path",
    "load_records",
    "score",
    "split_descriptions",
]
