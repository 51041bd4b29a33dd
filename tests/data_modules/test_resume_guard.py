"""A resumed fit must draw the rows its checkpoint's run drew: the T2L data modules refuse other data settings, and
checkpoints from before ``training_descriptions`` existed count as trained without them."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import yaml

from lora_hyper.data_modules.lora_library import LoRALibraryDataModule
from lora_hyper.data_modules.resume_guard import HPARAMS_KEY, check_resume_rows
from lora_hyper.data_modules.task_sampler import TaskCorpusDataModule
from lora_hyper.modules.finetune import LoRAFinetuneModule
from lora_hyper.validation import InputError

PROMPTS = ["The sky is blue.", "Sort the list.", "Count the letters.", "a b c"]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    from lora_hyper.testing import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for name, answer in (("say_yes", "yes"), ("say_no", "no")):
        (root / name).mkdir()
        meta = {
            "descriptions": [f"Always reply with {answer}", f"Reply {answer}", f"Output {answer}"],
            "training_descriptions": [
                f"Whatever you read, answer {answer}",
                f"The answer is always {answer}",
            ],
            "source": "data.jsonl",
        }
        (root / name / "metadata.yaml").write_text(yaml.safe_dump(meta))
        rows = [json.dumps({"input": p, "output": answer}) for p in PROMPTS * 2]
        (root / name / "data.jsonl").write_text("\n".join(rows) + "\n")
    return root


def _fit(llama_dir, corpus, root, max_steps, ckpt_path=None, **data_kw):
    import lightning as L

    data = TaskCorpusDataModule(
        base_model=str(llama_dir),
        corpus=str(corpus),
        held_out_tasks=[],
        n_eval_descriptions=1,
        steps_per_epoch=4,
        **{"tasks_per_batch": 2, **data_kw},
    )
    module = LoRAFinetuneModule(
        base_model=str(llama_dir), lora={"rank": 4}, mode="multitask", runtime={"attn_implementation": "sdpa"}
    )
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
    )
    trainer.fit(module, data, ckpt_path=ckpt_path)
    return trainer


@pytest.fixture(scope="module")
def checkpoint(llama_dir, corpus, tmp_path_factory):
    """A 2-step fit of a description-aware multi-task LoRA (descriptions in the prompts) without the train-only
    paraphrases, as the shipped CPU recipes run."""
    root = tmp_path_factory.mktemp("run")
    trainer = _fit(llama_dir, corpus, root, 2, training_descriptions=False, description_in_prompt=True)
    trainer.save_checkpoint(root / "step2.ckpt")
    return root / "step2.ckpt"


IN_PROMPT = {"description_in_prompt": True}


def test_resume_with_other_training_descriptions_is_refused(llama_dir, corpus, checkpoint, tmp_path):
    with pytest.raises(
        InputError, match=r"training_descriptions=false .* --data.init_args.training_descriptions false"
    ):
        _fit(llama_dir, corpus, tmp_path, 4, str(checkpoint), training_descriptions=True, **IN_PROMPT)
    with pytest.raises(
        InputError, match="tasks_per_batch=2 and this run sets 1: resume with --data.init_args"
    ):
        _fit(
            llama_dir,
            corpus,
            tmp_path,
            4,
            str(checkpoint),
            training_descriptions=False,
            tasks_per_batch=1,
            **IN_PROMPT,
        )
    resumed = _fit(llama_dir, corpus, tmp_path, 4, str(checkpoint), training_descriptions=False, **IN_PROMPT)
    assert resumed.global_step == 4


def test_description_settings_do_not_count_where_nothing_reads_descriptions(llama_dir, corpus, tmp_path):
    """A bare multi-task LoRA (or an oracle library) never sees a description: the paraphrase switch does not
    change what it trains on, so a resume may flip it (the benchmark keeps such stages across that switch)."""
    trainer = _fit(llama_dir, corpus, tmp_path, 2, training_descriptions=False)
    trainer.save_checkpoint(tmp_path / "bare.ckpt")
    resumed = _fit(llama_dir, corpus, tmp_path, 4, str(tmp_path / "bare.ckpt"), training_descriptions=True)
    assert resumed.global_step == 4


def test_checkpoint_from_before_the_key_counts_as_without_paraphrases(
    llama_dir, corpus, checkpoint, tmp_path
):
    """A checkpoint written before ``training_descriptions`` existed, resumed by a recipe that lacks the key (whose
    default is now True), would silently train on the paraphrases: it is refused with the fix."""
    old = torch.load(checkpoint, map_location="cpu", weights_only=False)
    del old[HPARAMS_KEY]["training_descriptions"]
    torch.save(old, tmp_path / "old.ckpt")
    with pytest.raises(InputError, match="--data.init_args.training_descriptions false"):
        _fit(llama_dir, corpus, tmp_path, 4, str(tmp_path / "old.ckpt"), **IN_PROMPT)
    resumed = _fit(
        llama_dir, corpus, tmp_path, 4, str(tmp_path / "old.ckpt"), training_descriptions=False, **IN_PROMPT
    )
    assert resumed.global_step == 4


def _stub(fn: str, **attrs):
    return SimpleNamespace(trainer=SimpleNamespace(state=SimpleNamespace(fn=fn)), **attrs)


def test_only_fits_with_recorded_arguments_are_checked():
    ckpt = {HPARAMS_KEY: {"seed": 0, "held_out_tasks": ["a", "b"]}}
    check_resume_rows(
        _stub("validate", seed=1), ckpt, ["seed"]
    )  # validating a checkpoint on other data is fine
    check_resume_rows(
        _stub("fit", seed=1), {}, ["seed"]
    )  # a fit from Python without a data module records none
    check_resume_rows(_stub("fit", held_out_tasks=("a", "b")), ckpt, ["held_out_tasks"])  # list == tuple
    check_resume_rows(_stub("fit", other=3), ckpt, ["other"])  # unknown to the checkpoint, no legacy value
    with pytest.raises(InputError, match=r"held_out_tasks=\[a,b\] and this run sets null"):
        check_resume_rows(_stub("fit", held_out_tasks=None), ckpt, ["held_out_tasks"])
    with pytest.raises(InputError, match="seed=0 and this run sets 1"):
        check_resume_rows(_stub("fit", seed=1), ckpt, ["seed"])


def test_lora_library_data_module_checks_its_rows():
    data = LoRALibraryDataModule(library_dir="unused", training_descriptions=True)
    data.trainer = SimpleNamespace(state=SimpleNamespace(fn="fit"))
    saved = dict(data.hparams)
    data.check_resume({HPARAMS_KEY: saved})
    del saved["training_descriptions"]
    with pytest.raises(InputError, match="--data.init_args.training_descriptions false"):
        data.check_resume({HPARAMS_KEY: saved})
    data.corpus_path = None  # without a corpus there are no paraphrases: the switch does not count
    data.check_resume({HPARAMS_KEY: saved})
