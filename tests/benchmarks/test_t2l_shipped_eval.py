"""benchmarks/t2l_shipped_eval.py: T2L scored from evaluation and (optionally) training descriptions."""

from __future__ import annotations

import json

import pytest
import t2l_shipped_eval

from lora_hyper.data_modules.task_corpus import TaskCorpus


class _Adapters:
    def __init__(self, descriptions):
        self.descriptions = descriptions

    def select(self, i):
        return self.descriptions[i]


class _KnowsTrainedPhrasings:
    """Answers a task right only under an adapter made from one of its training descriptions."""

    def __init__(self, task):
        self.task = task
        self.answers = {e.prompt: e.response for e in task.examples("test")}

    def generate_lora(self, descriptions):
        return _Adapters(descriptions)

    def generate(self, prompts, lora, max_new_tokens=24, system=None):
        known = lora in self.task.train_descriptions
        return [self.answers.get(p, "?") if known else "?" for p in prompts]


def test_training_descriptions_are_scored_apart_from_evaluation_ones():
    corpus = TaskCorpus.load("builtin")
    name = next(t for t in corpus.tasks if t not in corpus.held_out_tasks)
    model = _KnowsTrainedPhrasings(corpus.tasks[name])
    n_test = len(corpus.tasks[name].examples("test"))
    plain = t2l_shipped_eval.task_scores(model, corpus, name, 2, 24)
    assert set(plain) == {"base", "base_with_description", "t2l"}
    assert len(plain["t2l"]) == 2 * n_test and sum(plain["t2l"]) == 0
    both = t2l_shipped_eval.task_scores(model, corpus, name, 2, 24, n_train_desc=3)
    assert len(both["t2l_train_description"]) == 3 * n_test
    assert sum(both["t2l_train_description"]) == 3 * n_test and sum(both["t2l"]) == 0


def test_reused_baselines_are_not_regenerated():
    corpus = TaskCorpus.load("builtin")
    name = next(t for t in corpus.tasks if t not in corpus.held_out_tasks)
    model = _KnowsTrainedPhrasings(corpus.tasks[name])
    calls = []
    generate = model.generate
    model.generate = lambda prompts, lora, **kw: calls.append(lora) or generate(prompts, lora, **kw)
    reused = {"base": [1.0, 0.0], "base_with_description": [0.0, 1.0]}
    scores = t2l_shipped_eval.task_scores(model, corpus, name, 2, 24, baselines=reused)
    assert None not in calls and len(calls) == 2  # one generate per evaluation description, no base runs
    assert (
        scores["base"] == reused["base"]
        and scores["base_with_description"] == reused["base_with_description"]
    )


def test_reference_must_match_the_run(tmp_path, capsys):
    config = {
        "base_model": "smollm2-135m-instruct",
        "tasks_digest": "abc",
        "eval_descriptions_per_task": 2,
        "max_new_tokens": 24,
        "test_examples_per_task": 40,
    }
    groups = {"seen": ["a", "b"], "held_out": ["c"]}
    ref = {
        "config": dict(config),
        "summary": {g: {"tasks": names} for g, names in groups.items()},
        "per_example": {"base": {}, "base_with_description": {}, "t2l": {}},
    }
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(ref))
    assert t2l_shipped_eval.read_reference(str(path), config, groups)["per_example"] == ref["per_example"]
    for broken, message in (
        ({**ref, "config": {**config, "max_new_tokens": 32}}, "other max_new_tokens"),
        ({**ref, "config": {**config, "base_model": "other"}}, "other base_model"),
        ({**ref, "config": {**config, "tasks_digest": "def"}}, "other tasks_digest"),
        ({**ref, "summary": {"seen": {"tasks": ["a"]}, "held_out": {"tasks": ["c"]}}}, "other seen tasks"),
        ({k: v for k, v in ref.items() if k != "per_example"}, "no per-example scores"),
    ):
        path.write_text(json.dumps(broken))
        with pytest.raises(SystemExit) as exit_info:
            t2l_shipped_eval.read_reference(str(path), config, groups)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_tasks_digest_follows_descriptions_and_examples():
    corpus = TaskCorpus.load("builtin")
    names = sorted(corpus.held_out_tasks)[:2]
    digest = t2l_shipped_eval.tasks_digest(corpus, names, 2)
    assert digest == t2l_shipped_eval.tasks_digest(corpus, names, 2)
    assert digest != t2l_shipped_eval.tasks_digest(corpus, names, 1)
    assert digest != t2l_shipped_eval.tasks_digest(corpus, names[::-1], 2)
