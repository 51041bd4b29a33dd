"""LoRA library DataModule: adapters written by save_peft, descriptions, batches and errors."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.factories import random_lora

from lora_hyper.data_modules.lora_library import LoRALibraryDataModule
from lora_hyper.lora import LoRABatch, LoRASpec, save_peft


@pytest.fixture(scope="module")
def spec(tiny_llama):
    return LoRASpec(target_modules=["q_proj", "v_proj"], rank=4, scale=2.0).discover(tiny_llama[0])


def write_library(root, spec, names, rank=None, descriptions=True, n_desc=4):
    """One adapter per task (different random factors each) with optional descriptions.json."""
    lora = random_lora(spec, len(names), rank=rank, seed=len(names))
    for i, name in enumerate(names):
        save_peft(lora, i, root / name, base_model_name="tiny")
        if descriptions:
            (root / name / "descriptions.json").write_text(
                json.dumps([f"{name} task, phrasing {j}" for j in range(n_desc)])
            )
    return lora


def test_library_batches(tmp_path, spec):
    names = ["t0", "t1", "t2", "t3", "t4"]
    lora = write_library(tmp_path, spec, names)
    dm = LoRALibraryDataModule(
        str(tmp_path), corpus=None, tasks_per_batch=3, n_eval_descriptions=1, steps_per_epoch=6
    )
    dm.setup("fit")
    assert dm.library_task_names == names and dm.library.batch_size == 5
    for batch in dm.train_dataloader():
        assert set(batch) == {"descriptions", "task_names", "task_index", "target"}
        target = batch["target"]
        assert isinstance(target, LoRABatch) and target.batch_size == 3 and target.rank == 4
        assert len(set(batch["task_names"])) == 3
        for row, (name, desc) in enumerate(zip(batch["task_names"], batch["descriptions"])):
            i = names.index(name)
            assert batch["task_index"][row].item() == i
            assert desc in dm.train_descriptions[name] and desc not in dm.eval_descriptions[name]
            # the stacked adapter of this row reproduces the saved adapter's delta exactly
            for m in spec.target_modules:
                torch.testing.assert_close(target.delta(m)[row], lora.delta(m)[i], atol=1e-5, rtol=1e-5)
    val = list(dm.val_dataloader())
    assert sum(b["target"].batch_size for b in val) == 5
    assert all(d in dm.eval_descriptions[n] for b in val for n, d in zip(b["task_names"], b["descriptions"]))


def test_descriptions_from_corpus(tmp_path, spec):
    write_library(tmp_path, spec, ["add_two", "parity"], descriptions=False)
    dm = LoRALibraryDataModule(str(tmp_path), corpus="builtin", tasks_per_batch=2, steps_per_epoch=2)
    dm.setup()
    assert len(dm.train_descriptions["parity"]) >= 15 and len(dm.eval_descriptions["parity"]) == 5
    batch = next(iter(dm.train_dataloader()))
    assert sorted(batch["task_names"]) == ["add_two", "parity"]


def test_train_only_descriptions_of_the_corpus(tmp_path, spec):
    from lora_hyper.data_modules.task_corpus import TaskCorpus

    parity = TaskCorpus.load("builtin").tasks["parity"]
    extra = parity.extra_train_descriptions
    assert len(extra) >= 20
    write_library(tmp_path / "plain", spec, ["parity"], descriptions=False)
    write_library(tmp_path / "listed", spec, ["parity"], descriptions=False)
    # an oracle library exported with the extras on lists them in descriptions.json
    (tmp_path / "listed" / "parity" / "descriptions.json").write_text(json.dumps(parity.train_descriptions))
    for library in ("plain", "listed"):
        on = LoRALibraryDataModule(str(tmp_path / library), corpus="builtin", steps_per_epoch=2)
        off = LoRALibraryDataModule(
            str(tmp_path / library), corpus="builtin", steps_per_epoch=2, training_descriptions=False
        )
        on.setup(), off.setup()
        assert set(extra).isdisjoint(off.train_descriptions["parity"]), (
            library
        )  # off: left out even when listed
        assert on.train_descriptions["parity"] == off.train_descriptions["parity"] + extra, library
        assert set(extra).isdisjoint(on.eval_descriptions["parity"]), library  # never validated on
        assert on.eval_descriptions["parity"] == off.eval_descriptions["parity"], library
        drawn = {d for b in on.train_dataloader() for d in b["descriptions"]}
        assert drawn <= set(on.train_descriptions["parity"])


def test_library_errors(tmp_path, spec):
    with pytest.raises(ValueError, match="is empty"):
        LoRALibraryDataModule(str(tmp_path), corpus=None).setup()
    write_library(tmp_path, spec, ["a"], rank=4)
    write_library(tmp_path / "x", spec, ["b"], rank=2)
    (tmp_path / "x" / "b").rename(tmp_path / "b")
    with pytest.raises(ValueError, match="different ranks"):
        LoRALibraryDataModule(str(tmp_path), corpus=None, n_eval_descriptions=1).setup()

    other = tmp_path / "targets"
    write_library(other, spec, ["a"])
    q_spec = LoRASpec(
        target_modules=["q_proj"],
        rank=4,
        n_layers=spec.n_layers,
        layers_path=spec.layers_path,
        module_paths={"q_proj": spec.module_paths["q_proj"]},
        shapes={"q_proj": spec.shapes["q_proj"]},
    )
    write_library(other, q_spec, ["b"])
    with pytest.raises(ValueError, match="different modules or shapes"):
        LoRALibraryDataModule(str(other), corpus=None, n_eval_descriptions=1).setup()

    missing = tmp_path / "nodesc"
    write_library(missing, spec, ["not_a_builtin_task"], descriptions=False)
    with pytest.raises(ValueError, match="not a task of"):
        LoRALibraryDataModule(str(missing), corpus="builtin").setup()
    with pytest.raises(ValueError, match="no corpus is set"):
        LoRALibraryDataModule(str(missing), corpus=None).setup()
