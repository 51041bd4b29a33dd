"""The fair T2L benchmark's resume bookkeeping (``benchmarks/t2l_zero_shot.py --work-dir``), without models."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from t2l_zero_shot import Bench, Paused


def bench(tmp_path, seed: int = 0, max_stages: int | None = None, **variant: int) -> Bench:
    args = argparse.Namespace(
        examples_per_seen_task=None, cpu=True, time_budget=None, task_encoder="base", work_dir=str(tmp_path),
        seed=seed, max_stages=max_stages, ckpt_every=10, **variant,
    )  # fmt: skip
    b = Bench(args, "smoke")
    # what setup() derives from the corpus, fixed here
    b.pool, b.steps = ["a", "b", "c"], 2
    b.groups = {"seen": ["a"], "held_out": ["z"]}
    return b


def test_state_round_trip_continues_the_run(tmp_path):
    first = bench(tmp_path)
    first.runs["oracle"] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
    first.record("base", "a", [1.0, 0.0], [0.5, 0.7])
    first.partial["multitask"] = {"curve": [[1, 3.0, 0.5]], "wall_s": 0.5, "steps": 1}
    first.save_state()
    assert json.loads((tmp_path / "state.json").read_text())["runs"]["oracle"]["steps"] == 2
    assert not list(tmp_path.glob("*.tmp"))  # written atomically

    again = bench(tmp_path)
    again.load_state()
    assert again.runs == first.runs and again.partial == first.partial
    assert again.evaluated_task("base", "a") and not again.evaluated_task("base", "z")
    assert not again.evaluated("base")  # held-out task z not scored yet
    assert again.elapsed() >= again.prior_elapsed > 0.0


def test_a_work_dir_of_another_configuration_is_refused(tmp_path, capsys):
    bench(tmp_path, seed=0).save_state()
    other = bench(tmp_path, seed=1)
    with pytest.raises(SystemExit) as exit_info:
        other.load_state()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "differs in seed" in err and err.count("\n") == 1


def test_max_stages_pauses_after_that_many_stages(tmp_path):
    b = bench(tmp_path, max_stages=2)
    b.stage_done()
    with pytest.raises(Paused, match="max-stages 2"):
        b.stage_done()
    assert (tmp_path / "state.json").is_file()


def test_reconstruction_follows_the_oracles_and_sft_from_recon_follows_it(tmp_path):
    order = bench(tmp_path).stage_order()
    assert order[:3] == ["oracle", "t2l_recon_L", "t2l_sft_from_recon_L"]
    assert set(order) == {"oracle", "multitask", "multitask_with_description", *bench(tmp_path).t2l_keys}


def test_carry_dir_holds_state_and_only_the_weights_still_needed(tmp_path):
    from safetensors.torch import save_file

    carry = tmp_path / "carry"
    first = bench(tmp_path / "work")
    first.carry = carry
    first.runs["oracle"] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
    first.runs["t2l_recon_L"] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
    for k in ("a", "z"):
        first.record("t2l_recon_L", k, [1.0], [0.5])
    (first.work / "oracle").mkdir(parents=True)  # the large library: never carried
    first.weights_path("t2l_recon_L").parent.mkdir(parents=True)
    save_file({"w": torch.ones(3)}, str(first.weights_path("t2l_recon_L")))
    save_file(
        {"w": torch.zeros(3)}, str(first.weights_path("t2l_sft_L"))
    )  # none of its stages yet: not needed
    first.stage_done()
    assert sorted(p.name for p in (carry / "weights").iterdir()) == ["t2l_recon_L.safetensors"]
    assert not (carry / "oracle").exists() and not list(carry.rglob("*.tmp"))

    again = bench(tmp_path / "new_checkout")  # an empty work dir, as in a new session
    again.carry = carry
    again.load_state()
    assert again.runs == first.runs and again.evaluated("t2l_recon_L")
    assert (again.work / "weights" / "t2l_recon_L.safetensors").is_file()

    # once SFT from reconstruction has its own weights, the reconstruction's leave the carry dir
    first.runs["t2l_sft_from_recon_L"] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
    first.stage_done()
    assert not list((carry / "weights").iterdir())


def test_oracles_are_retrained_when_reconstruction_still_needs_their_library(tmp_path):
    b = bench(tmp_path)
    b.runs["oracle"] = {"steps": 2}
    b.record("oracle", "a", [1.0], [0.5])  # scored, library gone
    assert b.baseline_scored("oracle")
    trained = []
    b.fit = lambda key, *a, **k: trained.append(key) or False  # type: ignore[method-assign]
    b.data = lambda *a, **k: None  # type: ignore[method-assign]
    b.train_baseline("oracle")
    assert trained == ["oracle"]
    b.runs["t2l_recon_L"] = {"steps": 2}
    trained.clear()
    b.train_baseline("oracle")
    assert trained == []


def test_a_partial_curve_without_its_checkpoint_is_dropped(tmp_path):
    b = bench(tmp_path)
    b.partial["multitask"] = {"curve": [[1, 3.0, 0.5]], "wall_s": 0.5, "steps": 1}
    b.partial["oracle"] = {"curve": [[1, 3.0, 0.5]], "wall_s": 0.5, "steps": 1}
    (tmp_path / "ckpt" / "oracle").mkdir(parents=True)
    (tmp_path / "ckpt" / "oracle" / "last.ckpt").write_bytes(b"x")
    b.forget_lost_partial("multitask")
    b.forget_lost_partial("oracle")
    assert list(b.partial) == ["oracle"]


def test_small_checkpoints_of_unfinished_stages_travel_in_the_carry_dir(tmp_path, monkeypatch):
    import t2l_zero_shot

    monkeypatch.setattr(t2l_zero_shot, "CARRY_CKPT_MAX_BYTES", 10)
    carry = tmp_path / "carry"
    first = bench(tmp_path / "work")
    first.carry = carry
    for key, size in (("multitask", 8), ("t2l_sft_L", 11)):  # the second is over the (patched) limit
        first.partial[key] = {"curve": [[1, 3.0, 0.5]], "wall_s": 0.5, "steps": 1}
        (first.work / "ckpt" / key).mkdir(parents=True)
        (first.work / "ckpt" / key / "last.ckpt").write_bytes(b"x" * size)
    first.save_state()
    first.sync_carry()
    assert [p.parent.name for p in carry.glob("ckpt/*/last.ckpt")] == ["multitask"]

    again = bench(tmp_path / "new_checkout")
    again.carry = carry
    again.load_state()
    assert (again.work / "ckpt" / "multitask" / "last.ckpt").read_bytes() == b"x" * 8
    again.forget_lost_partial("multitask")
    again.forget_lost_partial("t2l_sft_L")
    assert list(again.partial) == ["multitask"]  # continues exactly; the other starts over

    first.partial.pop("multitask")  # finished: its checkpoint leaves the carry dir
    first.sync_carry()
    assert not list(carry.glob("ckpt/*/last.ckpt"))


def test_a_run_whose_oracles_were_trained_differently_keeps_all_but_the_oracle_stages(tmp_path, capsys):
    old = bench(tmp_path)
    for key in ("oracle", "t2l_recon_L", "multitask"):
        old.runs[key] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
        old.record(key, "a", [1.0], [0.5])
    (tmp_path / "oracle").mkdir()
    old.save_state()
    state = json.loads((tmp_path / "state.json").read_text())
    del state["fingerprint"]["oracle_init"]  # written before the oracles shared one A init
    (tmp_path / "state.json").write_text(json.dumps(state))

    again = bench(tmp_path)
    again.load_state()
    assert sorted(again.runs) == ["multitask"]
    assert sorted(again.per_example["exact_match"]) == ["multitask"]
    assert not (tmp_path / "oracle").exists()
    assert "redoing oracle" in capsys.readouterr().out


def test_baselines_score_a_multitask_adapter_only_once_its_stage_finished(tmp_path, monkeypatch):
    import types

    import t2l_zero_shot

    b = bench(tmp_path)
    example = types.SimpleNamespace(prompt="p", response="r")
    b.corpus = types.SimpleNamespace(
        tasks={n: types.SimpleNamespace(examples=lambda split: [example] * 5) for n in ("a", "z")}
    )
    b.examples = {"a": [example], "z": [example]}
    b.descriptions = {"a": ["do a"], "z": ["do z"]}
    for key in ("multitask", "multitask_with_description"):  # both exported; only the first stage finished
        (tmp_path / key).mkdir()
    b.runs["multitask"] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
    monkeypatch.setattr(t2l_zero_shot, "load_peft", lambda path: f"adapter:{path.name}")
    scored: list[tuple[str, str]] = []

    def score_conditions(name, conditions):
        scored.append((name, conditions[0][1]))
        return [1.0], [0.5]

    b.score_conditions = score_conditions  # type: ignore[method-assign]
    b.write = lambda complete: None  # type: ignore[method-assign]
    b.evaluate_baselines()
    adapters = {lora for _, lora in scored}
    assert adapters == {None, "adapter:multitask"}  # never the unfinished description-aware adapter
    assert sorted(b.per_example["exact_match"]) == [
        "base",
        "base_3shot",
        "base_with_description",
        "multitask",
    ]


def test_a_run_with_another_head_width_redoes_only_the_text_to_lora_stages(tmp_path, capsys):
    old = bench(tmp_path)
    for key in ("oracle", "t2l_recon_L", "multitask", "t2l_sft_L"):
        old.runs[key] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
        old.record(key, "a", [1.0], [0.5])
    old.costs = {"adapter": {"hypernet_params": 1}}  # measured on the old hypernetwork
    old.save_state()
    state = json.loads((tmp_path / "state.json").read_text())
    del state["fingerprint"]["t2l_head_in"]  # written before the head width was part of the fingerprint
    (tmp_path / "state.json").write_text(json.dumps(state))

    again = bench(tmp_path)
    again.load_state()
    assert sorted(again.runs) == ["multitask", "oracle"]
    assert sorted(again.per_example["ce"]) == ["multitask", "oracle"]
    assert again.costs == {}
    assert "redoing t2l_recon_L, t2l_sft_L, t2l_sft_from_recon_L; the other" in capsys.readouterr().out


def test_weights_too_large_to_carry_are_retrained_by_a_new_checkout(tmp_path, monkeypatch, capsys):
    from safetensors.torch import load_file, save_file

    import t2l_zero_shot

    monkeypatch.setattr(t2l_zero_shot, "CARRY_WEIGHTS_MAX_BYTES", 10**6)
    first = bench(tmp_path / "work")
    first.carry = tmp_path / "carry"
    first.runs["oracle"] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
    first.runs["t2l_recon_L"] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
    for k in ("a", "z"):
        first.record("t2l_recon_L", k, [1.0], [0.5])
    first.weights_path("t2l_recon_L").parent.mkdir(parents=True)
    save_file({"w": torch.ones(3)}, str(first.weights_path("t2l_recon_L")))  # SFT from it has not started
    first.save_state()
    first.sync_carry()
    carried = load_file(str(first.carry / "weights" / "t2l_recon_L.safetensors"))
    assert carried["w"].dtype == torch.bfloat16  # weights travel in bf16
    monkeypatch.setattr(t2l_zero_shot, "CARRY_WEIGHTS_MAX_BYTES", 4)  # retrained larger: the old copy goes
    first.sync_carry()
    assert not list((first.carry / "weights").glob("*"))

    same = bench(tmp_path / "work")  # the same checkout keeps them
    same.load_state()
    assert "t2l_recon_L" in same.runs

    again = bench(tmp_path / "new_checkout")
    again.carry = first.carry
    again.load_state()
    assert sorted(again.runs) == ["oracle"] and "t2l_recon_L" not in again.per_example["exact_match"]
    assert "t2l_recon_L: its hypernetwork weights are not in" in capsys.readouterr().out


def test_another_reconstruction_schedule_redoes_reconstruction_and_sft_from_it(tmp_path):
    old = bench(tmp_path)
    for key in ("oracle", "t2l_recon_L", "t2l_sft_L", "t2l_sft_from_recon_L"):
        old.runs[key] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
        for task in ("a", "z"):  # scored: their weights are not needed any more
            old.record(key, task, [1.0], [0.5])
    old.save_state()
    state = json.loads((tmp_path / "state.json").read_text())
    state["fingerprint"]["t2l_recon"]["max_steps"] += 1
    (tmp_path / "state.json").write_text(json.dumps(state))
    again = bench(tmp_path)
    again.load_state()
    assert sorted(again.runs) == ["oracle", "t2l_sft_L"]


def test_a_wider_trunk_is_a_variant_that_redoes_only_the_text_to_lora_stages(tmp_path, capsys):
    from safetensors.torch import save_file

    old = bench(tmp_path)
    for key in ("oracle", "multitask", "t2l_recon_L"):
        old.runs[key] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
        old.record(key, "a", [1.0], [0.5])
    old.weights_path("t2l_recon_L").parent.mkdir(parents=True)
    save_file({"w": torch.ones(3)}, str(old.weights_path("t2l_recon_L")))  # SFT from it has not started
    old.save_state()
    state = json.loads((tmp_path / "state.json").read_text())
    del state["fingerprint"]["t2l_latent"]  # written before the trunk width could be chosen: the size's own
    (tmp_path / "state.json").write_text(json.dumps(state))
    same = bench(tmp_path)
    same.load_state()
    assert sorted(same.runs) == ["multitask", "oracle", "t2l_recon_L"]

    wide = bench(tmp_path, latent=64, recon_steps=5)
    assert wide.name == "t2l_zero_shot_smoke_latent64_recon5"  # never the size's own result file
    assert wide.cfg["latent"] == 64 and wide.cfg["recon"]["max_steps"] == 5
    wide.load_state()
    assert sorted(wide.runs) == ["multitask", "oracle"]
    assert "another t2l_latent, t2l_recon: redoing t2l_recon_L" in capsys.readouterr().out


def test_sft_from_reconstruction_starts_alike_in_place_and_from_the_bf16_carry(tmp_path):
    import types

    module = types.SimpleNamespace(configure_model=lambda: None, hypernet=torch.nn.Linear(3, 2))
    b = bench(tmp_path)
    trained = {k: torch.randn(v.shape) for k, v in module.hypernet.state_dict().items()}
    b.recon_state = trained  # just trained, in this process
    assert b.load_recon("t2l_sft_from_recon_L", module)
    in_place = {k: v.clone() for k, v in module.hypernet.state_dict().items()}
    b.recon_state = {k: v.to(torch.bfloat16) for k, v in trained.items()}  # as carried to a new checkout
    assert b.load_recon("t2l_sft_from_recon_L", module)
    for k, v in module.hypernet.state_dict().items():
        assert torch.equal(v, in_place[k]) and v.dtype == torch.float32


def test_export_writes_a_loadable_model_dir_of_a_trained_stage(tmp_path, tiny_llama_dir, monkeypatch, capsys):
    from safetensors.torch import save_file

    from lora_hyper.api.text_to_lora import TextToLoRA
    from lora_hyper.modules.t2l import TextToLoRAModule
    from lora_hyper.testing import save_tiny_text_encoder

    encoder = save_tiny_text_encoder(tmp_path / "encoder")
    b = bench(tmp_path / "work")

    def tiny_module(head, objective, lr, from_recon=False):
        mlp = {"latent": 16, "head_in": 16, "head_size": head, "head_multiplier": 1.0 if from_recon else None}
        loss = {"objective": objective, "zscore": from_recon}
        return TextToLoRAModule(
            str(tiny_llama_dir), lora={"rank": 2}, mlp=mlp, task_encoder={"model": str(encoder)}, loss=loss
        )

    monkeypatch.setattr(b, "t2l_module", tiny_module)
    capsys.readouterr()  # the fixtures' progress bars
    with pytest.raises(SystemExit) as exit_info:
        b.export("t2l_sft_from_recon_L", str(tmp_path / "model"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no trained weights" in err and "trained: none" in err and err.count("\n") == 1
    assert not (tmp_path / "model").exists()

    trained = tiny_module("L", "sft", 1e-3, from_recon=True)
    trained.configure_model()
    state = {k: torch.randn(v.shape) for k, v in trained.hypernet.state_dict().items()}
    b.weights_path("t2l_sft_from_recon_L").parent.mkdir(parents=True)
    save_file(state, str(b.weights_path("t2l_sft_from_recon_L")))
    out = b.export("t2l_sft_from_recon_L", str(tmp_path / "model"))
    loaded = TextToLoRA.from_pretrained(out)
    for k, v in loaded.hypernet.state_dict().items():
        assert torch.equal(v.float(), state[k])
    assert loaded.hypernet.config.output_zscore and loaded.hypernet.config.head_multiplier == 1.0


def test_export_into_an_existing_directory_is_refused_before_any_work(tmp_path, capsys):
    from t2l_zero_shot import main

    existing = tmp_path / "model"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    argv = [
        "--smoke",
        "--work-dir",
        str(tmp_path / "work"),
        "--export",
        "t2l_sft_L",
        "--export-dir",
        str(existing),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"--export-dir {existing} exists; choose a new directory" in capsys.readouterr().err
    assert (existing / "keep.txt").read_text() == "mine" and not (tmp_path / "work").exists()


def test_description_in_prompt_variant_adds_one_stage_that_reads_the_description(tmp_path, monkeypatch):
    import types

    from lora_hyper.data_modules.task_sampler import description_prompt

    b = bench(tmp_path, description_in_prompt=True)
    assert b.name == "t2l_zero_shot_smoke_desc"  # never the size's own result file
    assert b.stage_order()[2:4] == ["t2l_sft_from_recon_L", "t2l_sft_from_recon_desc_L"]
    # the reconstruction's weights stay needed until every stage that starts from them has run
    b.runs["t2l_recon_L"] = b.runs["t2l_sft_from_recon_L"] = {"steps": 2}
    for name in ("a", "z"):  # reconstruction scored
        b.record("t2l_recon_L", name, [1.0], [0.5])
    assert "t2l_recon_L" in b.carried_weights()
    b.runs["t2l_sft_from_recon_desc_L"] = {"steps": 2}
    assert "t2l_recon_L" not in b.carried_weights()

    b.examples = {"a": [types.SimpleNamespace(prompt="abc", response="cba")]}
    b.descriptions = {"a": ["Reverse it.", "Write it backwards."]}
    b.costs["adapter"] = {}  # measured elsewhere
    module = types.SimpleNamespace(eval=lambda: None, generate_lora=lambda d: types.SimpleNamespace(
        to=lambda device: types.SimpleNamespace(batch_size=len(d), select=lambda j: f"adapter {j}")
    ))  # fmt: skip
    seen = {}

    def score(name, conditions):
        seen[name] = conditions
        return [1.0], [0.1]

    monkeypatch.setattr(b, "score_conditions", score)
    monkeypatch.setattr(b, "save_state", lambda: None)
    b.evaluate_t2l("t2l_sft_from_recon_desc_L", module)
    assert seen["a"] == [
        ([description_prompt("Reverse it.", "abc")], "adapter 0"),
        ([description_prompt("Write it backwards.", "abc")], "adapter 1"),
    ]
    b.evaluate_t2l("t2l_sft_from_recon_L", module)
    assert seen["a"] == [(["abc"], "adapter 0"), (["abc"], "adapter 1")]


def test_paraphrases_are_a_variant_that_redoes_only_the_stages_that_read_descriptions(tmp_path, capsys):
    old = bench(tmp_path)
    stages = (
        "oracle",
        "multitask",
        "multitask_with_description",
        "t2l_recon_L",
        "t2l_sft_L",
        "t2l_sft_from_recon_L",
    )
    for key in stages:
        old.runs[key] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
        for task in ("a", "z"):  # scored: their weights are not needed any more
            old.record(key, task, [1.0], [0.5])
    old.save_state()
    state = json.loads((tmp_path / "state.json").read_text())
    del state["fingerprint"]["training_descriptions"]  # written before the corpus had training_descriptions
    (tmp_path / "state.json").write_text(json.dumps(state))

    same = bench(tmp_path)  # the default trains as before: everything is kept
    assert same.name == "t2l_zero_shot_smoke"
    same.load_state()
    assert sorted(same.runs) == sorted(stages)

    again = bench(tmp_path, training_descriptions=True)
    assert again.name == "t2l_zero_shot_smoke_paraphrases"  # never the published result file
    again.load_state()
    assert sorted(again.runs) == ["multitask", "oracle"]  # their example rows do not depend on descriptions
    redone = "redoing t2l_recon_L, t2l_sft_L, t2l_sft_from_recon_L, multitask_with_description; the other"
    assert redone in capsys.readouterr().out


def test_an_export_never_drops_the_stages_of_a_run_with_other_options(tmp_path, capsys):
    from safetensors.torch import save_file

    old = bench(tmp_path)
    old.runs["t2l_sft_L"] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
    old.weights_path("t2l_sft_L").parent.mkdir(parents=True)
    save_file({"w": torch.ones(3)}, str(old.weights_path("t2l_sft_L")))
    old.save_state()
    other = bench(tmp_path, training_descriptions=True, export="t2l_sft_L")
    with pytest.raises(SystemExit) as e:
        other.load_state()
    assert e.value.code == 2 and "was run with another training_descriptions" in capsys.readouterr().err
    assert (
        old.weights_path("t2l_sft_L").is_file()
        and "t2l_sft_L" in json.loads((tmp_path / "state.json").read_text())["runs"]
    )
