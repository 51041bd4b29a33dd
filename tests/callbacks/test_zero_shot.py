"""ZeroShotTaskEvaluation on a tiny corpus with a scripted module; the lm-eval bridge glue and its error path."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest
import torch
import yaml
from helpers.factories import random_lora

from lora_hyper.callbacks.zero_shot import ZeroShotTaskEvaluation
from lora_hyper.lora import LoRABatch, LoRASpec, apply_lora, save_peft


def _corpus(tmp_path):
    from lora_hyper.data_modules.task_corpus import TaskCorpus

    root = tmp_path / "corpus"
    for name, answer in [("echo_a", "a"), ("echo_b", "b"), ("echo_c", "c")]:
        folder = root / name
        folder.mkdir(parents=True)
        meta = {
            "descriptions": [f"Reply {answer} {k}" for k in range(4)],
            "source": "data.jsonl",
            "prompt_template": "{input}",
            "response_field": "output",
            "test_fraction": 0.5,
        }
        (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
        rows = [json.dumps({"input": f"q{i} {name}", "output": answer}) for i in range(8)]
        (folder / "data.jsonl").write_text("\n".join(rows) + "\n")
    return TaskCorpus.load(str(root), held_out_tasks=["echo_c"], n_eval_descriptions=1)


class ScriptedModule:
    """A stand-in for TextToLoRAModule: adapters are perfect, the base model answers 'wrong'."""

    def __init__(self, spec: LoRASpec) -> None:
        self.spec = spec
        self.training = True
        self.described: list[str] = []

    def eval(self):
        self.training = False

    def train(self, mode: bool = True):
        self.training = mode

    def generate_lora(self, descriptions):
        self.described += descriptions
        return LoRABatch.zeros(self.spec, len(descriptions))

    def generate(self, prompts, adapters=None, system=None, max_new_tokens=32, share_adapters=False):
        assert adapters is None or len(prompts) == adapters.batch_size or share_adapters
        assert adapters is None or len(prompts) % adapters.batch_size == 0
        out = []
        for p in prompts:
            answer = p.rsplit("_", 1)[-1]
            if adapters is not None or "\n\n" in p:
                out.append(f" {answer.upper()} ")  # exact match normalises case and spaces
            else:
                out.append("wrong")
        return out


class _Logger:
    def __init__(self):
        self.logged = []

    def log_metrics(self, metrics, step):
        self.logged.append((step, metrics))


def test_zero_shot_scores_baselines_and_files(tmp_path, tiny_llama):
    corpus = _corpus(tmp_path)
    spec = LoRASpec(["q_proj"], 2).discover(tiny_llama[0])
    save_peft(random_lora(spec, 1), 0, tmp_path / "multitask")
    save_peft(random_lora(spec, 1), 0, tmp_path / "oracles" / "echo_a")
    callback = ZeroShotTaskEvaluation(
        every_n_steps=2,
        examples_per_task=3,
        n_descriptions=1,
        multitask_adapter=str(tmp_path / "multitask"),
        oracle_library=str(tmp_path / "oracles"),
        output_dir=str(tmp_path / "out"),
    )
    module = ScriptedModule(spec)
    logger = _Logger()
    trainer = SimpleNamespace(
        global_step=1,
        is_global_zero=True,
        loggers=[logger],
        callback_metrics={},
        datamodule=SimpleNamespace(corpus=corpus),
    )
    callback.on_train_batch_end(trainer, module)
    assert logger.logged == []  # not a multiple of every_n_steps
    trainer.global_step = 2
    callback.on_train_batch_end(trainer, module)
    step, metrics = logger.logged[-1]
    assert step == 2 and module.training  # training mode restored
    assert metrics["zero_shot/t2l/mean_seen"] == 1.0 and metrics["zero_shot/t2l/mean_held_out"] == 1.0
    assert metrics["zero_shot/base/mean_seen"] == 0.0
    assert (
        float(trainer.callback_metrics["zero_shot/t2l/mean_seen"]) == 1.0
    )  # monitorable (e.g. ModelCheckpoint)
    assert metrics["zero_shot/base_with_description/echo_c"] == 1.0
    assert metrics["zero_shot/multitask/echo_b"] == 1.0
    assert metrics["zero_shot/oracle/echo_a"] == 1.0 and "zero_shot/oracle/echo_b" not in metrics
    # Only unseen (evaluation) descriptions were turned into adapters.
    eval_descriptions = {d for t in corpus.tasks.values() for d in t.eval_descriptions}
    assert module.described and set(module.described) <= eval_descriptions
    # Baselines are computed once; the fit-end run only regenerates the T2L adapters.
    trainer.global_step = 3
    callback.on_fit_end(trainer, module)
    assert logger.logged[-1][1]["zero_shot/base/echo_a"] == 0.0
    history = json.loads((tmp_path / "out" / "zero_shot.json").read_text())
    assert [h["step"] for h in history] == [2, 3]
    rows = list(csv.DictReader(open(tmp_path / "out" / "zero_shot.csv")))
    assert {r["split"] for r in rows} == {"seen", "held_out"}
    assert {(r["method"], r["task"]) for r in rows if r["step"] == "3"} >= {
        ("t2l", "echo_c"),
        ("base", "echo_a"),
    }


def test_zero_shot_needs_a_corpus():
    callback = ZeroShotTaskEvaluation()
    with pytest.raises(ValueError, match="needs a task corpus"):
        callback.corpus(SimpleNamespace(datamodule=None))


# ------------------------------------------------------------------------------------------ lm-eval bridge
def test_lm_eval_missing_names_the_eval_extra(tiny_llama):
    import importlib.util

    from lora_hyper.lm_eval_bridge import evaluate_adapter, require_lm_eval

    if importlib.util.find_spec("lm_eval") is not None:
        pytest.skip("lm-eval is installed here")
    with pytest.raises(ImportError, match=r"lora-hyper\[eval\]"):
        require_lm_eval()
    with pytest.raises(ImportError, match="`eval` extra"):
        evaluate_adapter(tiny_llama[0], tiny_llama[1], None, ["arc_easy"])
    with pytest.raises(ValueError, match="at least one lm-eval task"):
        evaluate_adapter(tiny_llama[0], tiny_llama[1], None, [])


def test_lm_eval_glue_merge_and_apply_agree(tiny_llama):
    from lora_hyper.lm_eval_bridge import adapted_model, summarize_results

    model, tok = tiny_llama
    spec = LoRASpec(["q_proj", "v_proj"], 2).discover(model)
    lora = random_lora(spec, 2, seed=4)
    ids = tok(["The sky is blue."], return_tensors="pt")
    merged, ctx = adapted_model(model, lora, index=1, merge=True)
    assert merged is not model
    with torch.no_grad(), ctx:
        got = merged(**ids).logits
    same, ctx = adapted_model(model, lora, index=1, merge=False)
    assert same is model
    with torch.no_grad(), ctx:
        applied = same(**ids).logits
    with torch.no_grad(), apply_lora(model, lora.select(1)):
        ref = model(**ids).logits
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(applied, ref, atol=1e-6, rtol=1e-6)
    plain, ctx = adapted_model(model, None)
    assert plain is model
    results = {"results": {"arc_easy": {"acc,none": 0.5, "acc_stderr,none": 0.1, "alias": "arc_easy"}}}
    assert summarize_results(results) == {"arc_easy": {"acc": 0.5}}
