"""benchmarks/t2l_shipped_eval.py: T2L scored from evaluation and (optionally) training descriptions."""

from __future__ import annotations

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
