"""Every bad input a new user tried ends in one clear stderr line with exit status 2 (CLI) or one clear exception
(API), fast, and leaves no file behind. One row per input; the slow subprocess rows share one fixture."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lora_hyper.cli import main
from lora_hyper.validation import InputError

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(
    lora={"rank": 4},
    perceiver={"latent_dim": 32, "n_latents": 4, "n_blocks": 1, "n_heads": 4},
    runtime={"attn_implementation": "sdpa"},
)


@pytest.fixture(scope="module")
def env(tiny_llama_dir, tmp_path_factory):
    """Model dirs (D2L, T2L, broken ones), documents good and bad, and a tiny D2L recipe."""
    from lora_hyper.api.doc_to_lora import DocToLoRA
    from lora_hyper.api.text_to_lora import TextToLoRA
    from lora_hyper.modules.d2l import DocToLoRAModule
    from lora_hyper.modules.t2l import TextToLoRAModule
    from lora_hyper.testing import save_tiny_text_encoder

    root = tmp_path_factory.mktemp("bad_inputs")
    os.environ.setdefault("LORA_HYPER_CACHE", str(root / "cache"))
    module = DocToLoRAModule(base_model=str(tiny_llama_dir), **SMALL)
    module.configure_model()
    d2l = DocToLoRA.from_module(module).save_pretrained(root / "d2l")
    t2l_module = TextToLoRAModule(
        base_model=str(tiny_llama_dir),
        lora={"targets": ["q_proj"], "rank": 4},
        mlp={"latent": 16, "head_in": 16, "head_size": "S"},
        task_encoder={"model": str(save_tiny_text_encoder(root / "encoder"))},
        runtime={"attn_implementation": "sdpa"},
    )
    t2l_module.configure_model()
    t2l = TextToLoRA.from_module(t2l_module).save_pretrained(root / "t2l")
    docs = root / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("The special magic number is 4242. The sky is blue.")
    (docs / "empty.txt").write_text("")
    (docs / "blank.txt").write_text("   \n\t ")
    (docs / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (docs / "nul.txt").write_bytes(b"\x00" * 2000)
    (docs / "control.txt").write_text("\x01\x02\x03\x04 hi" * 50)
    (docs / "folder").mkdir()
    (docs / "existing_file").write_text("keep me")
    (docs / "tasks_empty.txt").write_text("\n\n")
    (docs / "tasks_dupes.txt").write_text("Sort the list.\nSort the list.\n")
    broken_json = root / "broken_json"
    broken_json.mkdir()
    (broken_json / "lora_hyper.json").write_text('{"format": "lora-hyper/doc-to-lora",,}')
    (broken_json / "hypernet.safetensors").write_bytes((d2l / "hypernet.safetensors").read_bytes())
    no_weights = root / "no_weights"
    no_weights.mkdir()
    (no_weights / "lora_hyper.json").write_text((d2l / "lora_hyper.json").read_text())
    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    init = recipe["model"]["init_args"]
    init.update(base_model=str(tiny_llama_dir), runtime=SMALL["runtime"])
    for group in ("lora", "perceiver"):
        init[group].update(SMALL[group])
    init["encoder"]["chunk_length"] = 48
    recipe["data"]["init_args"]["base_model"] = str(tiny_llama_dir)
    recipe["trainer"].update(
        max_steps=1,
        default_root_dir=str(root / "runs"),
        enable_progress_bar=False,
        callbacks=[],
        logger=False,
    )
    recipe["trainer"]["enable_checkpointing"] = False
    return {"root": root, "d2l": d2l, "t2l": t2l, "docs": docs, "recipe": recipe, "tiny": tiny_llama_dir}


def recipe_file(env, name: str, change=None, text: str | None = None) -> Path:
    path = env["root"] / f"{name}.yaml"
    if text is not None:
        path.write_text(text)
        return path
    cfg = copy.deepcopy(env["recipe"])
    if change:
        change(cfg)
    path.write_text(yaml.safe_dump(cfg))
    return path


def set_in(section: str, key: str, value):
    """Set ``key`` (``group.field`` inside a module's argument group) of a recipe section."""

    def change(cfg):
        target = cfg[section]["init_args"] if section in ("model", "data") else cfg[section]
        *groups, name = key.split(".")
        for group in groups:
            target = target.setdefault(group, {})
        target[name] = value

    return change


def rename_in(section: str, old: str, new: str):
    """Rename ``old`` to ``new`` in a recipe section (``group.field`` renames inside a module's argument group)."""

    def change(cfg):
        target = cfg[section]["init_args"] if section in ("model", "data") else cfg[section]
        *groups, name = old.split(".")
        for group in groups:
            target = target[group]
        target[new.rsplit(".", 1)[-1]] = target.pop(name)

    return change


def D(env, name):  # noqa: N802 - a document path
    return str(env["docs"] / name)


# (id, argv builder, key words of the one-line message)
CLI_CASES = [
    (
        "ask-doc-missing",
        lambda e: ["ask", "--model", str(e["d2l"]), "--doc", D(e, "nope.txt"), "--question", "q"],
        "not found",
    ),
    (
        "ask-doc-directory",
        lambda e: ["ask", "--model", str(e["d2l"]), "--doc", D(e, "folder"), "--question", "q"],
        "is a directory",
    ),
    (
        "ask-doc-empty",
        lambda e: ["ask", "--model", str(e["d2l"]), "--doc", D(e, "empty.txt"), "--question", "q"],
        "empty or whitespace",
    ),
    (
        "ask-doc-blank",
        lambda e: ["ask", "--model", str(e["d2l"]), "--doc", D(e, "blank.txt"), "--question", "q"],
        "empty or whitespace",
    ),
    (
        "ask-doc-latin1",
        lambda e: ["ask", "--model", str(e["d2l"]), "--doc", D(e, "latin1.txt"), "--question", "q"],
        "not valid UTF-8",
    ),
    (
        "ask-doc-nul",
        lambda e: ["ask", "--model", str(e["d2l"]), "--doc", D(e, "nul.txt"), "--question", "q"],
        "NUL bytes",
    ),
    (
        "ask-doc-control",
        lambda e: ["ask", "--model", str(e["d2l"]), "--doc", D(e, "control.txt"), "--question", "q"],
        "control characters",
    ),
    (
        "ask-model-missing",
        lambda e: ["ask", "--model", str(e["root"] / "nope"), "--doc", D(e, "good.txt"), "--question", "q"],
        "shipped models are",
    ),
    (
        "ask-model-unknown-name",
        lambda e: ["ask", "--model", "d2l-nope", "--doc", D(e, "good.txt"), "--question", "q"],
        "shipped models are",
    ),
    (
        "ask-model-is-t2l",
        lambda e: ["ask", "--model", str(e["t2l"]), "--doc", D(e, "good.txt"), "--question", "q"],
        "is a Text-to-LoRA model directory",
    ),
    (
        "ask-model-empty-dir",
        lambda e: ["ask", "--model", D(e, "folder"), "--doc", D(e, "good.txt"), "--question", "q"],
        "not a Doc-to-LoRA model directory",
    ),
    (
        "ask-model-no-weights",
        lambda e: [
            "ask",
            "--model",
            str(e["root"] / "no_weights"),
            "--doc",
            D(e, "good.txt"),
            "--question",
            "q",
        ],
        "hypernet.safetensors is missing",
    ),
    (
        "ask-model-broken-json",
        lambda e: [
            "ask",
            "--model",
            str(e["root"] / "broken_json"),
            "--doc",
            D(e, "good.txt"),
            "--question",
            "q",
        ],
        "lora_hyper.json: invalid JSON",
    ),
    (
        "ask-question-empty",
        lambda e: ["ask", "--model", str(e["d2l"]), "--doc", D(e, "good.txt"), "--question", " "],
        "--question is empty",
    ),
    (
        "ask-chunk-length-0",
        lambda e: [
            "ask",
            "--model",
            str(e["d2l"]),
            "--doc",
            D(e, "good.txt"),
            "--question",
            "q",
            "--chunk-length",
            "0",
        ],
        "--chunk-length must be",
    ),
    (
        "ask-rank-budget-negative",
        lambda e: [
            "ask",
            "--model",
            str(e["d2l"]),
            "--doc",
            D(e, "good.txt"),
            "--question",
            "q",
            "--rank-budget",
            "-1",
        ],
        "--rank-budget must be",
    ),
    (
        "ask-max-new-tokens-0",
        lambda e: [
            "ask",
            "--model",
            str(e["d2l"]),
            "--doc",
            D(e, "good.txt"),
            "--question",
            "q",
            "--max-new-tokens",
            "0",
        ],
        "--max-new-tokens must be",
    ),
    (
        "ask-missing-flag",
        lambda e: ["ask", "--model", str(e["d2l"]), "--doc", D(e, "good.txt")],
        "required: --question",
    ),
    (
        "internalize-duplicate-stems",
        lambda e: [
            "internalize",
            "--model",
            str(e["d2l"]),
            "--doc",
            D(e, "good.txt"),
            D(e, "folder/../good.txt"),
            "--out",
            str(e["root"] / "o1"),
        ],
        "share the file stem",
    ),
    (
        "internalize-out-is-file",
        lambda e: [
            "internalize",
            "--model",
            str(e["d2l"]),
            "--doc",
            D(e, "good.txt"),
            "--out",
            D(e, "existing_file"),
        ],
        "exists and is a file",
    ),
    (
        "internalize-doc-nul",
        lambda e: [
            "internalize",
            "--model",
            str(e["d2l"]),
            "--doc",
            D(e, "nul.txt"),
            "--out",
            str(e["root"] / "o2"),
        ],
        "NUL bytes",
    ),
    (
        "generate-model-is-d2l",
        lambda e: [
            "generate",
            "--model",
            str(e["d2l"]),
            "--task",
            "Sort the list.",
            "--out",
            str(e["root"] / "o3"),
        ],
        "is a Doc-to-LoRA model directory",
    ),
    (
        "generate-task-empty",
        lambda e: ["generate", "--model", str(e["t2l"]), "--task", " ", "--out", str(e["root"] / "o4")],
        "--task is empty",
    ),
    (
        "generate-task-file-blank-lines",
        lambda e: [
            "generate",
            "--model",
            str(e["t2l"]),
            "--task-file",
            D(e, "tasks_empty.txt"),
            "--out",
            str(e["root"] / "o5"),
        ],
        "empty or whitespace",
    ),
    (
        "generate-task-file-duplicates",
        lambda e: [
            "generate",
            "--model",
            str(e["t2l"]),
            "--task-file",
            D(e, "tasks_dupes.txt"),
            "--out",
            str(e["root"] / "o6"),
        ],
        "repeats the description",
    ),
    (
        "generate-missing-model",
        lambda e: ["generate", "--task", "Sort.", "--out", str(e["root"] / "o7")],
        "required: --model",
    ),
    (
        "export-ckpt-missing",
        lambda e: ["export", "--ckpt", str(e["root"] / "nope.ckpt"), "--out", str(e["root"] / "o8")],
        "checkpoint file not found",
    ),
    (
        "export-ckpt-directory",
        lambda e: ["export", "--ckpt", D(e, "folder"), "--out", str(e["root"] / "o9")],
        "sharded checkpoint directory",
    ),
    (
        "export-ckpt-garbage",
        lambda e: ["export", "--ckpt", D(e, "nul.txt"), "--out", str(e["root"] / "o10")],
        "cannot read",
    ),
    ("unknown-command", lambda e: ["fitt", "--config", "x.yaml"], "did you mean 'fit'"),
    (
        "fit-config-missing",
        lambda e: ["fit", "--config", str(e["root"] / "nope.yaml")],
        "recipe file not found",
    ),
    ("fit-config-directory", lambda e: ["fit", "--config", D(e, "folder")], "is a directory"),
    (
        "fit-config-bad-yaml",
        lambda e: ["fit", "--config", str(recipe_file(e, "bad_yaml", text="model: [a, b\n"))],
        "not valid YAML",
    ),
    (
        "fit-config-a-list",
        lambda e: ["fit", "--config", str(recipe_file(e, "a_list", text="- a\n- b\n"))],
        "must be a YAML mapping",
    ),
    (
        "fit-misspelled-key",
        lambda e: [
            "fit",
            "--config",
            str(recipe_file(e, "rnak", rename_in("model", "lora.rank", "lora.rnak"))),
        ],
        "did you mean 'rank'",
    ),
    (
        "fit-misspelled-group",
        lambda e: ["fit", "--config", str(recipe_file(e, "optm", rename_in("model", "optim", "optm")))],
        "did you mean 'optim'",
    ),
    (
        "fit-flat-key-of-the-old-layout",
        lambda e: ["fit", "--config", str(recipe_file(e, "flat", set_in("model", "lr", 1e-3)))],
        "model.init_args.lr is now model.init_args.optim.lr",
    ),
    (
        "fit-flat-override-of-the-old-layout",
        lambda e: ["fit", "--config", str(recipe_file(e, "ok")), "--model.init_args.lr=1e-3"],
        "--model.init_args.lr is now --model.init_args.optim.lr",
    ),
    (
        "fit-group-field-of-the-wrong-type",
        lambda e: ["fit", "--config", str(recipe_file(e, "ok")), "--model.init_args.optim.lr=fast"],
        "optim.lr: Expected a <class 'float'>",
    ),
    (
        "fit-negative-lr-override",
        lambda e: ["fit", "--config", str(recipe_file(e, "ok")), "--model.init_args.optim.lr=-1"],
        "lr must be > 0, got -1.0",
    ),
    (
        "fit-unknown-schedule",
        lambda e: ["fit", "--config", str(recipe_file(e, "sch", set_in("model", "optim.schedule", "cosin")))],
        "Unknown schedule 'cosin'",
    ),
    (
        "fit-misspelled-class-path",
        lambda e: [
            "fit",
            "--config",
            str(
                recipe_file(
                    e, "cp", lambda c: c["model"].update(class_path="lora_hyper.modules.d2l.DocToLoraModule")
                )
            ),
        ],
        "did you mean 'lora_hyper.modules.d2l.DocToLoRAModule'",
    ),
    (
        "fit-misspelled-top-level",
        lambda e: [
            "fit",
            "--config",
            str(recipe_file(e, "top", lambda c: c.update(trainr=c.pop("trainer")))),
        ],
        "did you mean 'trainer'",
    ),
    (
        "fit-misspelled-trainer-key",
        lambda e: [
            "fit",
            "--config",
            str(recipe_file(e, "tk", rename_in("trainer", "max_steps", "max_step"))),
        ],
        "did you mean 'max_steps'",
    ),
    (
        "fit-misspelled-data-key",
        lambda e: [
            "fit",
            "--config",
            str(recipe_file(e, "dk", rename_in("data", "batch_size", "batchsize"))),
        ],
        "did you mean 'batch_size'",
    ),
    (
        "fit-misspelled-override",
        lambda e: ["fit", "--config", str(recipe_file(e, "ok")), "--model.init_args.lora.rnak=3"],
        "did you mean 'rank'",
    ),
    (
        "fit-rank-0",
        lambda e: ["fit", "--config", str(recipe_file(e, "r0", set_in("model", "lora.rank", 0)))],
        "rank must be",
    ),
    (
        "fit-rank-negative",
        lambda e: ["fit", "--config", str(recipe_file(e, "rm2", set_in("model", "lora.rank", -2)))],
        "rank must be",
    ),
    (
        "fit-chunk-length-0",
        lambda e: ["fit", "--config", str(recipe_file(e, "cl0", set_in("model", "encoder.chunk_length", 0)))],
        "chunk_length must be",
    ),
    (
        "fit-l1-negative",
        lambda e: ["fit", "--config", str(recipe_file(e, "l1", set_in("model", "loss.l1_weight", -1.0)))],
        "l1_weight must be",
    ),
    (
        "fit-lr-0",
        lambda e: ["fit", "--config", str(recipe_file(e, "lr0", set_in("model", "optim.lr", 0.0)))],
        "lr must be > 0",
    ),
    (
        "fit-batch-size-0",
        lambda e: ["fit", "--config", str(recipe_file(e, "bs0", set_in("data", "batch_size", 0)))],
        "batch_size must be",
    ),
    (
        "fit-unknown-target",
        lambda e: [
            "fit",
            "--config",
            str(recipe_file(e, "tg", set_in("model", "lora.targets", ["foo_proj"]))),
        ],
        "Unknown target module 'foo_proj'",
    ),
    (
        "fit-empty-targets",
        lambda e: ["fit", "--config", str(recipe_file(e, "te", set_in("model", "lora.targets", ["", "x"])))],
        "targets must be",
    ),
    (
        "fit-base-model-missing",
        lambda e: [
            "fit",
            "--config",
            str(
                recipe_file(
                    e,
                    "bm",
                    lambda c: (
                        c["model"]["init_args"].update(base_model="./no/such/dir"),
                        c["data"]["init_args"].update(base_model="./no/such/dir"),
                    ),
                )
            ),
        ],
        "does not exist",
    ),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_is_one_line_exit_2(case, env, capsys):
    _, build, words = case
    before = sorted(p.name for p in env["root"].iterdir())
    rc = main(build(env))
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("lora-hyper: error:") and words in err, err
    after = sorted(p.name for p in env["root"].iterdir() if not p.name.endswith(".yaml") and p.name != "runs")
    assert after == [n for n in before if not n.endswith(".yaml") and n != "runs"]  # nothing written
    assert (env["docs"] / "existing_file").read_text() == "keep me"


def test_debug_env_shows_the_traceback(env, monkeypatch):
    monkeypatch.setenv("LORA_HYPER_DEBUG", "1")
    with pytest.raises(InputError, match="NUL bytes"):
        main(["ask", "--model", str(env["d2l"]), "--doc", D(env, "nul.txt"), "--question", "q"])


# ------------------------------------------------------------------ the Python API


@pytest.fixture(scope="module")
def d2l(env):
    from lora_hyper.api.doc_to_lora import DocToLoRA

    return DocToLoRA.from_pretrained(env["d2l"])


API_CASES = [
    ("internalize-chunk-length-0", lambda m: m.internalize(["text"], chunk_length=0), "chunk_length must be"),
    ("internalize-rank-budget-0", lambda m: m.internalize(["text"], rank_budget=0), "rank_budget must be"),
    ("internalize-no-docs", lambda m: m.internalize([]), "No documents given"),
    ("internalize-nul-doc", lambda m: m.internalize(["\x00" * 100]), "NUL bytes"),
    ("internalize-blank-doc", lambda m: m.internalize(["ok", "  "]), "document 1 is empty"),
    ("internalize-not-a-string", lambda m: m.internalize([b"bytes"]), "must be a string"),
    (
        "generate-count-mismatch",
        lambda m: m.generate(["q1", "q2"], m.internalize(["doc"])),
        "share_adapters=True",
    ),
    (
        "generate-uneven-share",
        lambda m: m.generate(["a", "b", "c"], m.internalize(["x", "y"]), share_adapters=True),
        "cannot be shared evenly",
    ),
    (
        "generate-question-too-long",
        lambda m: m.generate(["word " * (m.native_window + 10)], None),
        "longer than the model's native window",
    ),
    ("generate-no-questions", lambda m: m.generate([], None), "No questions given"),
    (
        "save-adapter-index",
        lambda m: m.save_adapter(m.internalize(["doc"]), 5, "/tmp/never-written"),
        "out of range",
    ),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input_is_one_clear_error(case, d2l):
    _, call, words = case
    with pytest.raises((ValueError, IndexError)) as info:
        call(d2l)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert not Path("/tmp/never-written").exists()


def test_shared_adapters_when_asked_for(d2l):
    lora = d2l.internalize(["The special magic number is 1234."])
    assert len(d2l.generate(["q1", "q2"], lora, max_new_tokens=2, share_adapters=True)) == 2


def test_base_model_names_fail_fast(monkeypatch):
    """Bad names are refused by the resolver itself, before transformers' loaders (and the hub's retries) run."""
    import transformers

    from lora_hyper.base_model import load_base_model

    def reached(*args, **kwargs):
        raise AssertionError("a bad model name reached transformers' from_pretrained")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for cls in (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        monkeypatch.setattr(cls, "from_pretrained", reached)
    for name, words in [
        ("", "empty"),
        ("./no/such", "does not exist"),
        ("no-such-org/no-such-model", "offline"),
    ]:
        with pytest.raises(ValueError, match=words):
            load_base_model(name)


def test_module_arguments_are_checked_before_anything_loads():
    from lora_hyper.modules.args import OptimArgs
    from lora_hyper.modules.d2l import DocToLoRAModule
    from lora_hyper.modules.finetune import LoRAFinetuneModule
    from lora_hyper.modules.t2l import TextToLoRAModule

    for kwargs, words in [
        (dict(lora={"rank": 0}), "rank must be"),
        (dict(lora={"targets": ["down_proj", "down_proj"]}), "repeat"),
        (dict(encoder={"chunk_length": 0}), "chunk_length must be"),
        (dict(encoder={"mode": "sideways"}), "Unknown encoder mode 'sideways'"),
        (dict(lora={"rank_budget": -1}), "rank_budget must be"),
        (dict(base_model=""), "base_model must be"),
        (dict(optim={"weight_decay": -0.1}), "weight_decay must be"),
        (dict(optim={"lrr": 1e-3}), "optim has no field 'lrr'; did you mean 'lr'"),
        (dict(optim=1e-3), "optim must be OptimArgs or a dict"),
        (dict(loss={"objective": "mse"}), "Unknown objective 'mse'"),
        (dict(perceiver={"n_latents": 0}), "n_latents must be"),
    ]:
        with pytest.raises(InputError, match=words):
            DocToLoRAModule(**kwargs)
    with pytest.raises(InputError, match="lr must be > 0"):
        OptimArgs(lr=0)
    with pytest.raises(InputError, match="rank must be"):
        TextToLoRAModule(lora={"rank": -2})
    with pytest.raises(InputError, match="latent must be a positive multiple of 4"):
        TextToLoRAModule(mlp={"latent": 6})
    with pytest.raises(InputError, match="Unknown mode"):
        LoRAFinetuneModule(mode="both")


# ------------------------------------------------------------------ paths fail fast, before heavy imports


# Runs the CLI like `python -m lora_hyper`, then prints which heavy libraries the failed command imported.
_IMPORT_PROBE = """
import runpy, sys
code = 0
try:
    runpy.run_module("lora_hyper", run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code
print(",".join(m for m in ("torch", "transformers", "lightning", "peft") if m in sys.modules))
sys.exit(code)
"""


@pytest.mark.slow
def test_bad_paths_fail_before_heavy_imports(env):
    """A wrong path is reported in about a second: checked before torch/transformers/lightning are imported (an
    import check, not a timing one, so a loaded machine cannot make it flaky)."""
    cases = [
        ["fit", "--config", str(env["root"] / "nope.yaml")],
        ["ask", "--model", str(env["d2l"]), "--doc", D(env, "nope.txt"), "--question", "q"],
        ["ask", "--model", str(env["root"] / "nope"), "--doc", D(env, "good.txt"), "--question", "q"],
        [
            "internalize",
            "--model",
            str(env["d2l"]),
            "--doc",
            D(env, "folder"),
            "--out",
            str(env["root"] / "x"),
        ],
        ["generate", "--model", str(env["d2l"]), "--task", "Sort.", "--out", str(env["root"] / "y")],
    ]
    for argv in cases:
        proc = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE, *argv], capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stdout.strip() == "", (argv, f"imported before failing: {proc.stdout.strip()}")


def test_every_torch_load_in_the_package_is_weights_only():
    """Security: no pickle is executed on a file a user could be handed."""
    offenders = []
    for folder in ("lora_hyper", "data_modules", "callbacks"):
        for f in (ROOT / folder).rglob("*.py"):
            text = f.read_text()
            start = 0
            while (i := text.find("torch.load(", start)) != -1:
                depth, j = 0, i
                for j in range(
                    i + len("torch.load"), len(text)
                ):  # the whole call, nested parentheses included
                    depth += {"(": 1, ")": -1}.get(text[j], 0)
                    if depth == 0:
                        break
                call = text[i : j + 1]
                if "weights_only=True" not in call:
                    offenders.append(f"{f.relative_to(ROOT)}: {call}")
                start = i + 1
    assert not offenders, offenders
