"""DocumentQADataModule: JSONL reading and its errors, the Doc-to-LoRA batch contract, chunking, `datasets` specs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from lora_hyper.data_modules.collate import IGNORE_INDEX
from lora_hyper.data_modules.documents import DocumentQADataModule, load_datasets_split, read_jsonl

DATA = Path(__file__).parents[1] / "data" / "docqa_tiny.jsonl"


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_jsonl_records():
    items = read_jsonl(DATA)
    assert [it.doc_id for it in items] == ["colors", "docqa_tiny-1", "count"]
    assert items[0].qas[0] == ("What color is the sky?", "blue") and len(items[0].qas) == 3
    assert items[1].context.startswith("The special magic number is 1234.")


def test_read_json_array(tmp_path):
    path = tmp_path / "docs.json"
    path.write_text(
        json.dumps([{"context": "Doc.", "qas": [{"question": "Q?", "answer": "A"}]}]), encoding="utf-8"
    )
    assert read_jsonl(path)[0].qas == [("Q?", "A")]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"context": "a", "qas": [{"question": "q", "answer": "a"}]}', "{not json"], r":2: invalid JSON"),
        (['{"context": "a"}'], r":1: 'qas' must be a non-empty list"),
        (['{"context": "   ", "qas": [{"question": "q", "answer": "a"}]}'], r":1: empty context"),
        (['{"context": 3, "qas": []}'], r":1: 'context' must be a string"),
        (["", '{"context": "a", "qas": [{"question": "q"}]}'], r":2: qas\[0\] needs non-empty string"),
        (['["a list"]'], r"record 0: expected a JSON object"),
        (["", "  "], r"no records"),
    ],
)
def test_bad_records_name_the_line(tmp_path, lines, message):
    with pytest.raises(ValueError, match=message):
        read_jsonl(write(tmp_path / "bad.jsonl", lines))


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_jsonl(tmp_path / "nope.jsonl")
    bad = tmp_path / "latin.jsonl"
    bad.write_bytes(b'{"context": "caf\xe9"}\n')
    with pytest.raises(ValueError, match="not UTF-8"):
        read_jsonl(bad)


def make_dm(tiny_llama_dir, **kw) -> DocumentQADataModule:
    dm = DocumentQADataModule(str(tiny_llama_dir), **({"train_files": str(DATA), "batch_size": 3} | kw))
    dm.setup("fit")
    return dm


def test_batch_contract_with_teacher(tiny_llama_dir):
    dm = make_dm(tiny_llama_dir, with_teacher=True, shuffle=False)
    tok = dm.tokenizer
    batch = next(iter(dm.train_dataloader()))
    records = dm.records["train"]
    assert batch["doc_ids"] == [r.doc_id for r in records]
    assert batch["ctx_doc_index"].tolist() == [0, 1, 2]
    assert batch["qa_doc_index"].tolist() == [0, 0, 0, 1, 2, 2]
    qas = [qa for r in records for qa in r.qas]
    for prefix in ("ctx_", "", "teacher_"):
        mask = batch[f"{prefix}attention_mask"]
        assert mask.shape == batch[f"{prefix}input_ids"].shape
        assert bool((mask[:, -1] == 1).all()) and bool((mask[:, 1:] >= mask[:, :-1]).all())
    for r, (question, answer) in enumerate(qas):
        labels, t_labels = batch["labels"][r], batch["teacher_labels"][r]
        ans = labels[labels != IGNORE_INDEX].tolist()
        assert tok.decode(ans) == answer + tok.eos_token
        assert ans == t_labels[t_labels != IGNORE_INDEX].tolist()
        assert labels[-len(ans) :].tolist() == ans
        row = tok.decode(batch["input_ids"][r][batch["attention_mask"][r].bool()])
        empty_system = "<|im_start|>system\n<|im_end|>\n"  # the reference's empty system message
        assert row.startswith(empty_system + "<|im_start|>user\n" + question) and row.endswith(
            "<|im_start|>assistant\n" + answer + "<|im_end|>"
        )
        doc = records[batch["qa_doc_index"][r]]
        assert doc.context not in row
        assert doc.context in tok.decode(batch["teacher_input_ids"][r])


def test_questions_per_doc_and_deterministic_shuffle(tiny_llama_dir):
    dm = make_dm(tiny_llama_dir, questions_per_doc=1, batch_size=1, seed=5)
    order1 = [b["doc_ids"][0] for b in dm.train_dataloader()]
    order2 = [
        b["doc_ids"][0]
        for b in make_dm(tiny_llama_dir, questions_per_doc=1, batch_size=1, seed=5).train_dataloader()
    ]
    assert order1 == order2 and sorted(order1) == sorted(["colors", "docqa_tiny-1", "count"])
    for b in dm.train_dataloader():
        assert b["input_ids"].shape[0] == 1 and b["qa_doc_index"].tolist() == [0]


def test_fixed_and_random_chunking(tiny_llama_dir):
    dm = make_dm(
        tiny_llama_dir,
        chunk_length=8,
        shuffle=False,
        val_files=str(DATA),
        test_files=str(DATA),
        eval_chunk_length=1000,
    )
    tok = dm.tokenizer
    batch = next(iter(dm.train_dataloader()))
    expected = [
        math.ceil(len(tok(r.context, add_special_tokens=False)["input_ids"]) / 8) for r in dm.records["train"]
    ]
    assert torch.bincount(batch["ctx_doc_index"]).tolist() == expected
    val = next(iter(dm.val_dataloader()))
    assert val["ctx_doc_index"].tolist() == [0, 1, 2] and "teacher_input_ids" not in val
    teach = make_dm(tiny_llama_dir, with_teacher=True, val_files=str(DATA), test_files=str(DATA))
    assert next(iter(teach.val_dataloader()))["teacher_labels"].shape[0] == 6
    assert "teacher_input_ids" not in next(iter(teach.test_dataloader()))
    rnd = make_dm(tiny_llama_dir, max_chunks=3, min_chunk_tokens=2)
    ks = {rnd.split_dataset("train")[i].n_chunks for i in range(3)}
    assert ks <= {1, 2, 3} and all(k is not None for k in ks)


def test_splits_and_constructor_errors(tiny_llama_dir):
    dm = make_dm(tiny_llama_dir)
    assert dm.val_dataloader() == []
    with pytest.raises(RuntimeError, match="No test data"):
        dm.test_dataloader()
    with pytest.raises(ValueError, match="not both"):
        DocumentQADataModule("x", train_files="a.jsonl", dataset="json")
    with pytest.raises(ValueError, match="needs train_files"):
        DocumentQADataModule("x")
    with pytest.raises(ValueError, match="dataset_splits keys"):
        DocumentQADataModule("x", dataset="json", dataset_splits={"training": "train"})
    missing = DocumentQADataModule(str(tiny_llama_dir), train_files="/nonexistent/docs.jsonl")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        missing.setup("fit")


def test_datasets_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"):
        load_datasets_split({"path": "json", "data_files": str(DATA)}, "train")


def test_datasets_spec_on_local_json(tiny_llama_dir):
    pytest.importorskip("datasets")
    spec = {"path": "json", "data_files": {"train": str(DATA), "validation": str(DATA)}}
    dm = make_dm(
        tiny_llama_dir, train_files=None, dataset=spec, dataset_splits={"train": "train", "val": "validation"}
    )
    assert len(dm.records["train"]) == 3 and dm.records["val"][0].qas[0] == ("What color is the sky?", "blue")
    val = next(iter(dm.val_dataloader()))
    assert val["qa_doc_index"].tolist() == [0, 0, 0, 1, 2, 2]
    assert val["doc_ids"] == ["colors", "validation-1", "count"]
