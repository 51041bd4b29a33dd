"""Task corpus: metadata validation, the built-in corpus, hierarchical sampling and the Text-to-LoRA batch contract."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
import yaml

from lora_hyper.data_modules.collate import IGNORE_INDEX
from lora_hyper.data_modules.task_corpus import TaskCorpus, TaskCorpusDataModule, load_records, score


def write_task(root, name, descriptions=None, records=None, **meta):
    """A corpus task folder with a local JSONL source."""
    folder = root / name
    folder.mkdir(parents=True)
    if records is None:
        records = [
            {"input": f"{name} {i}", "output": f"out {i}", "split": "test" if i >= 8 else "train"}
            for i in range(10)
        ]
    (folder / "data.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    body = {
        "descriptions": descriptions
        if descriptions is not None
        else [f"{name} description {i}" for i in range(4)]
    }
    body.update(meta or {"source": "data.jsonl"})
    (folder / "metadata.yaml").write_text(yaml.safe_dump(body))
    return folder


@pytest.fixture()
def small_corpus(tmp_path):
    split = {
        "source": {"path": "data.jsonl", "filter": {"split": "train"}},
        "test_source": {"path": "data.jsonl", "filter": {"split": "test"}},
    }
    for name in ["alpha", "beta", "gamma", "delta"]:
        write_task(tmp_path, name, **split)
    (tmp_path / "held_out.yaml").write_text(yaml.safe_dump(["delta"]))
    return tmp_path


# ------------------------------------------------------------------------------------------- validation
def test_empty_corpus_is_an_error(tmp_path):
    (tmp_path / "not_a_task").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        TaskCorpus.load(str(tmp_path))


def test_task_without_descriptions_is_an_error(tmp_path):
    write_task(tmp_path, "a", descriptions=[])
    with pytest.raises(ValueError, match="has no descriptions"):
        TaskCorpus.load(str(tmp_path), n_eval_descriptions=0)


def test_unreadable_source_is_an_error(tmp_path):
    write_task(tmp_path, "a", source="missing.jsonl")
    with pytest.raises(FileNotFoundError, match="cannot be read"):
        TaskCorpus.load(str(tmp_path), n_eval_descriptions=1)
    other = tmp_path / "other"
    folder = write_task(other, "b", source={"path": "data.jsonl"})
    (folder / "data.jsonl").write_text("{not json\n")
    task = TaskCorpus.load(str(other), n_eval_descriptions=1).tasks["b"]
    with pytest.raises(ValueError, match="Task 'b': data source .*data.jsonl cannot be read"):
        task.examples("train")


def test_unknown_held_out_task_and_bad_fields(tmp_path):
    write_task(tmp_path, "a", source="data.jsonl")
    write_task(tmp_path, "b", source="data.jsonl", prompt_template="{question}")
    with pytest.raises(ValueError, match=r"Unknown held-out task\(s\) \['zzz'\]"):
        TaskCorpus.load(str(tmp_path), held_out_tasks=["zzz"], n_eval_descriptions=1)
    corpus = TaskCorpus.load(str(tmp_path), held_out_tasks=[], n_eval_descriptions=1)
    with pytest.raises(ValueError, match="prompt_template field 'question'"):
        corpus.tasks["b"].examples("train")
    with pytest.raises(ValueError, match="leaves none for training"):
        TaskCorpus.load(str(tmp_path), n_eval_descriptions=4)


def test_unknown_metric_is_an_error(tmp_path):
    write_task(tmp_path, "a", source="data.jsonl", metric="bleu")
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        TaskCorpus.load(str(tmp_path), n_eval_descriptions=1)


# ------------------------------------------------------------------------------------------- sources
def test_jsonl_source_template_system_message_and_fraction_split(tmp_path):
    records = [{"q": f"what is {i}?", "answers": [f"{i}", "x"]} for i in range(20)]
    write_task(
        tmp_path,
        "qa",
        records=records,
        source="data.jsonl",
        prompt_template="Q: {q}",
        response_field="answers",
        system_message="Be brief.",
        test_fraction=0.25,
    )
    task = TaskCorpus.load(str(tmp_path), n_eval_descriptions=1).tasks["qa"]
    train, test = task.examples("train"), task.examples("test")
    assert (len(train), len(test)) == (15, 5)
    assert {e.prompt for e in train}.isdisjoint({e.prompt for e in test})
    ex = next(e for e in train + test if e.prompt == "Q: what is 3?")
    assert ex.response == "3" and task.system_message == "Be brief."
    assert len(task.train_descriptions) == 3 and len(task.eval_descriptions) == 1


def test_datasets_source_goes_through_load_dataset(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("datasets")

    def load_dataset(**kwargs):
        calls.append(kwargs)
        return [{"input": f"x{i}", "output": f"y{i}", "lang": "en" if i % 2 else "fr"} for i in range(10)]

    fake.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", fake)
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "local.parquet").write_text("")
    spec = {"path": "parquet", "data_files": "local.parquet", "filter": {"lang": "en"}, "max_examples": 3}
    records = load_records(spec, folder, "t")
    assert calls == [{"path": "parquet", "data_files": str(folder / "local.parquet"), "split": "train"}]
    assert [r["input"] for r in records] == ["x1", "x3", "x5"]
    records = load_records({"path": "Lots-of-LoRAs/task1146_country_capital", "split": "test"}, folder, "t")
    assert (
        calls[-1] == {"path": "Lots-of-LoRAs/task1146_country_capital", "split": "test"}
        and len(records) == 10
    )
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"):
        load_records({"path": "Lots-of-LoRAs/task1146_country_capital"}, folder, "t")


def test_score_metrics():
    assert score("  Hello   World. ", "hello world", "exact_match") == 1.0
    assert score("Hello World", "hello world", "exact_match_cased") == 0.0
    assert score("HELLO  WORLD", "HELLO WORLD", "exact_match_cased") == 1.0
    assert score("positive", "negative", "exact_match") == 0.0
    assert score("the cat sat", "the cat sat down", "rougeL") == pytest.approx(2 * 1.0 * 0.75 / 1.75)
    with pytest.raises(ValueError, match="Unknown metric"):
        score("a", "a", "f1")


def test_training_descriptions_are_only_ever_trained_on(tmp_path):
    extra = ["alpha extra 0", "alpha extra 1", "alpha extra 0"]
    write_task(tmp_path, "alpha", source="data.jsonl", training_descriptions=extra)
    with_extra = TaskCorpus.load(str(tmp_path), n_eval_descriptions=2).tasks["alpha"]
    without = TaskCorpus.load(str(tmp_path), n_eval_descriptions=2, training_descriptions=False).tasks[
        "alpha"
    ]
    assert with_extra.eval_descriptions == without.eval_descriptions and len(without.eval_descriptions) == 2
    assert with_extra.train_descriptions == without.train_descriptions + ["alpha extra 0", "alpha extra 1"]
    assert with_extra.descriptions == without.descriptions  # the evaluation pool is unchanged


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("one string", "must be a list of non-empty strings"),
        (["  "], "must be a list of non-empty strings"),
        (["ALPHA description 1"], "is also under 'descriptions'"),
    ],
)
def test_bad_training_descriptions_are_errors(tmp_path, extra, message):
    write_task(tmp_path, "alpha", source="data.jsonl", training_descriptions=extra)
    with pytest.raises(ValueError, match=message):
        TaskCorpus.load(str(tmp_path), n_eval_descriptions=1)


def test_train_only_descriptions_leave_the_example_rows_unchanged(tmp_path, datamodule_factory):
    split = {
        "source": {"path": "data.jsonl", "filter": {"split": "train"}},
        "test_source": {"path": "data.jsonl", "filter": {"split": "test"}},
    }
    for name in ["alpha", "beta", "gamma"]:
        write_task(
            tmp_path, name, training_descriptions=[f"{name} paraphrase {i}" for i in range(12)], **split
        )
    kw = {
        "tasks_per_batch": 2,
        "examples_per_task": 2,
        "steps_per_epoch": 200,
        "held_out_tasks": [],
        "n_eval_descriptions": 1,
    }
    on = datamodule_factory(tmp_path, **kw).train_dataloader().dataset
    off = datamodule_factory(tmp_path, training_descriptions=False, **kw).train_dataloader().dataset
    rows_on = [r for i in range(200) for r in on.draw(i)]
    rows_off = [r for i in range(200) for r in off.draw(i)]
    assert [(t.name, ex) for t, _, _, ex in rows_on] == [(t.name, ex) for t, _, _, ex in rows_off]
    assert all("paraphrase" not in d for _, _, d, _ in rows_off)
    paraphrased = [("paraphrase" in d) for _, _, d, _ in rows_on]
    assert 0.6 < sum(paraphrased) / len(paraphrased) < 0.9  # uniform over 3 + 12 training phrasings: 0.8
    assert {d for t, _, d, _ in rows_on} <= {
        d for t in on.corpus.tasks.values() for d in t.train_descriptions
    }


# ------------------------------------------------------------------------------------------- built-in corpus
def test_builtin_corpus():
    corpus = TaskCorpus.load("builtin")
    assert len(corpus.tasks) >= 40
    assert len(corpus.held_out_tasks) == 8 and len(corpus.train_tasks) == len(corpus.tasks) - 8
    assert set(corpus.held_out_tasks).isdisjoint(corpus.train_tasks)
    for name, task in corpus.tasks.items():
        assert len(set(task.descriptions)) >= 20, name
        assert len(task.eval_descriptions) == 5 and set(task.eval_descriptions).isdisjoint(
            task.train_descriptions
        )
        train, test = task.examples("train"), task.examples("test")
        assert (len(train), len(test)) == (200, 40), name
        assert {e.prompt for e in train}.isdisjoint({e.prompt for e in test}), name
        assert all(e.response.strip() and len(e.response) < 80 for e in train), name
    assert sorted(corpus.tasks).index("add_two") == corpus.task_index("add_two")
    from lora_hyper.data_modules.builtin_tasks import generate

    plain = TaskCorpus.load("builtin", training_descriptions=False)
    for name, task in corpus.tasks.items():  # train-only paraphrases: seen tasks only, never evaluated on
        extra = task.extra_train_descriptions
        assert task.train_descriptions == plain.tasks[name].train_descriptions + extra, name
        assert len(extra) == 0 if task.held_out else len(extra) >= 25, name
        assert task.eval_descriptions == plain.tasks[name].eval_descriptions, name
        # the committed metadata is what generate.py writes from its tables
        assert task.descriptions == generate.DESCRIPTIONS[name], name
        assert extra == generate.TRAINING_DESCRIPTIONS.get(name, []), name
    ex = corpus.tasks["reverse_words"].examples("test")[0]
    assert ex.response.split() == ex.prompt.split()[::-1]


def test_builtin_train_only_descriptions_do_not_near_copy_an_evaluation_description():
    import difflib
    import re

    def words(d):
        return re.findall(r"[a-z0-9]+", d.casefold())

    closest = max(
        difflib.SequenceMatcher(None, words(e), words(x)).ratio()
        for task in TaskCorpus.load("builtin").tasks.values()
        for e in task.eval_descriptions
        for x in task.extra_train_descriptions
    )
    assert closest < 0.75  # 0.71 as committed (the docs quote it); a copy with one word changed scores >= 0.8


def test_builtin_generator_is_deterministic():
    from lora_hyper.data_modules.builtin_tasks import generate

    corpus = TaskCorpus.load("builtin")
    rows = generate.examples("sort_numbers")
    assert [r["input"] for r in rows[:200]] == [
        e.prompt for e in corpus.tasks["sort_numbers"].examples("train")
    ]
    assert (
        generate.number_words(342) == "three hundred forty-two" and generate.pig_latin("string") == "ingstray"
    )


# ------------------------------------------------------------------------------------------- DataModule
@pytest.fixture()
def datamodule_factory(tiny_llama_dir):
    def make(corpus, **kw):
        dm = TaskCorpusDataModule(str(tiny_llama_dir), corpus=str(corpus), **kw)
        dm.setup("fit")
        return dm

    return make


def test_training_batches_follow_the_contract(small_corpus, datamodule_factory):
    dm = datamodule_factory(
        small_corpus, n_eval_descriptions=1, tasks_per_batch=3, examples_per_task=2, steps_per_epoch=20
    )
    assert dm.corpus.held_out_tasks == ["delta"]
    seen_descriptions = set()
    for batch in dm.train_dataloader():
        assert set(batch) == {
            "input_ids",
            "attention_mask",
            "labels",
            "descriptions",
            "task_names",
            "task_index",
        }
        n = batch["input_ids"].shape[0]
        assert n == 6 and batch["attention_mask"].shape == batch["labels"].shape == batch["input_ids"].shape
        assert (
            len(batch["descriptions"]) == len(batch["task_names"]) == n
            and batch["task_index"].dtype == torch.long
        )
        names = batch["task_names"]
        assert len(set(names)) == 3 and all(
            names.count(t) == 2 for t in set(names)
        )  # distinct tasks, 2 rows each
        assert "delta" not in names
        assert batch["task_index"].tolist() == [dm.corpus.task_index(t) for t in names]
        assert (batch["attention_mask"][:, -1] == 1).all()  # left padding
        mask = batch["attention_mask"]
        assert ((mask[:, 1:] - mask[:, :-1]) >= 0).all()
        for d, t in zip(batch["descriptions"], names):
            assert d in dm.corpus.tasks[t].train_descriptions
            seen_descriptions.add(d)
        # labels only on answer tokens: decoded labels are exactly the response + end of turn
        tok = dm.tokenizer
        for row, t in enumerate(names):
            lab = batch["labels"][row]
            assert (lab[mask[row] == 0] == IGNORE_INDEX).all()
            answer = tok.decode(lab[lab != IGNORE_INDEX], skip_special_tokens=True)
            prompt = tok.decode(batch["input_ids"][row][(lab == IGNORE_INDEX) & (mask[row] == 1)])
            assert answer.startswith("out ") and t in prompt and batch["descriptions"][row] not in prompt
    held = {d for t in dm.corpus.tasks.values() for d in t.eval_descriptions}
    assert seen_descriptions and seen_descriptions.isdisjoint(held)


def test_batches_are_reproducible_and_change_with_epoch(small_corpus, datamodule_factory):
    dm = datamodule_factory(small_corpus, n_eval_descriptions=1, tasks_per_batch=2, steps_per_epoch=5)
    first = [b["task_names"] + b["descriptions"] for b in dm.train_dataloader()]
    again = [b["task_names"] + b["descriptions"] for b in dm.train_dataloader()]
    assert first == again
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1)
    assert [b["task_names"] + b["descriptions"] for b in loader] != first


def test_description_in_prompt_tasks_filter_and_val(small_corpus, datamodule_factory):
    dm = datamodule_factory(
        small_corpus,
        n_eval_descriptions=1,
        tasks=["delta"],
        tasks_per_batch=8,
        examples_per_task=3,
        description_in_prompt=True,
        steps_per_epoch=2,
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["task_names"] == ["delta"] * 3
    prompt = dm.tokenizer.decode(batch["input_ids"][0])
    assert batch["descriptions"][0] in prompt
    val = list(dm.val_dataloader())
    rows = sum(len(b["task_names"]) for b in val)
    assert rows == 2 and all(
        d in dm.corpus.tasks["delta"].eval_descriptions for b in val for d in b["descriptions"]
    )
    with pytest.raises(ValueError, match=r"Unknown task\(s\) \['nope'\]"):
        datamodule_factory(small_corpus, n_eval_descriptions=1, tasks=["nope"])


def test_val_covers_train_tasks_with_eval_descriptions(small_corpus, datamodule_factory):
    dm = datamodule_factory(small_corpus, n_eval_descriptions=2, val_batch_size=4)
    val = list(dm.val_dataloader())
    names = [t for b in val for t in b["task_names"]]
    assert sorted(set(names)) == ["alpha", "beta", "gamma"] and len(names) == 6
    for b in val:
        for d, t in zip(b["descriptions"], b["task_names"]):
            assert d in dm.corpus.tasks[t].eval_descriptions
