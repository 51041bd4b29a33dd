"""Nothing is overwritten or left half-written, and weights/config files are checked before any model loads."""

from __future__ import annotations

import json
import os
import random
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.factories import random_lora
from safetensors.torch import save_file

from lora_hyper.cli import main
from lora_hyper.file_io import read_json_config, validate_safetensors
from lora_hyper.lora import LoRASpec, atomic_directory_write, load_peft, save_peft

SMALL = dict(
    lora={"rank": 4},
    perceiver={"latent_dim": 32, "n_latents": 4, "n_blocks": 1, "n_heads": 4},
    runtime={"attn_implementation": "sdpa"},
)


def write_marker(text: str):
    """A ``write`` callback that writes ``marker.txt`` and a subfolder (for atomic_directory_write)."""

    def write(tmp: Path) -> None:
        (tmp / "marker.txt").write_text(text)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "inner.txt").write_text(text)

    return write


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def d2l_module(tiny_llama_dir):
    """A freshly built tiny DocToLoRAModule (configure_model done)."""
    from lora_hyper.modules.d2l import DocToLoRAModule

    torch.manual_seed(0)
    module = DocToLoRAModule(base_model=str(tiny_llama_dir), encoder={"chunk_length": 16}, **SMALL)
    module.configure_model()
    return module


@pytest.fixture(scope="module")
def d2l(d2l_module):
    from lora_hyper.api.doc_to_lora import DocToLoRA

    return DocToLoRA.from_module(d2l_module)


@pytest.fixture(scope="module")
def d2l_dir(d2l, tmp_path_factory):
    """A valid Doc-to-LoRA model directory (save_pretrained of the tiny module)."""
    return d2l.save_pretrained(tmp_path_factory.mktemp("models") / "d2l")


@pytest.fixture
def broken_d2l_dir(d2l_dir, tmp_path):
    """A copy of the valid model dir, for tests that damage it."""
    out = tmp_path / "broken"
    out.mkdir()
    for p in d2l_dir.iterdir():
        (out / p.name).write_bytes(p.read_bytes())
    return out


@pytest.fixture
def no_base_load(monkeypatch):
    """Fail the test if the base model is loaded at all."""

    def refuse(*args, **kwargs):
        raise AssertionError("load_base_model was called before the model dir was checked")

    monkeypatch.setattr("lora_hyper.api.doc_to_lora.load_base_model", refuse)
    monkeypatch.setattr("lora_hyper.base_model.load_base_model", refuse)


@pytest.fixture
def adapter(tiny_llama, tmp_path):
    model, _ = tiny_llama
    spec = LoRASpec(["q_proj", "v_proj"], rank=2).discover(model)
    return save_peft(random_lora(spec, 1), 0, tmp_path / "adapter")


# ---------------------------------------------------------------------------------------------- writes
def test_existing_file_target_is_refused_and_untouched(tmp_path, tiny_llama):
    target = tmp_path / "out"
    target.write_text("precious")
    called = []
    for overwrite in (False, True):
        with pytest.raises(FileExistsError) as info:
            atomic_directory_write(target, lambda tmp: called.append(tmp), overwrite=overwrite)
        assert one_line(info.value) == f"{target} exists and is a file; choose another output path."
    assert not called and target.read_text() == "precious"
    model, _ = tiny_llama
    lora = random_lora(LoRASpec(["q_proj"], rank=2).discover(model), 1)
    with pytest.raises(FileExistsError, match="exists and is a file"):
        save_peft(lora, 0, target, overwrite=True)
    assert target.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or renamed-aside leftovers
    nested = target / "adapter"  # a file where a parent folder should be
    with pytest.raises(FileExistsError, match=f"{re.escape(str(target))} exists and is a file"):
        atomic_directory_write(nested, write_marker("x"))


def test_existing_dir_needs_overwrite_and_is_then_replaced_atomically(tmp_path):
    target = atomic_directory_write(tmp_path / "model", write_marker("old"))
    (target / "stale.txt").write_text("from the old version")
    with pytest.raises(FileExistsError) as info:
        atomic_directory_write(target, write_marker("new"))
    assert one_line(info.value) == f"{target} exists; pass overwrite=True (CLI: --overwrite) to replace it."
    assert (target / "marker.txt").read_text() == "old"
    seen = []

    def write(tmp: Path) -> None:
        seen.append((target / "marker.txt").read_text())  # the old content stays in place while writing
        write_marker("new")(tmp)

    assert atomic_directory_write(target, write, overwrite=True) == target
    assert seen == ["old"]
    assert sorted(p.name for p in target.iterdir()) == ["marker.txt", "sub"]  # old files are gone
    assert (target / "marker.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_an_error_inside_write_leaves_no_temp_dir_and_the_old_content(tmp_path):
    names = []

    def failing(tmp: Path) -> None:
        names.append(tmp.name)
        (tmp / "half.bin").write_bytes(b"\0" * 1000)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_directory_write(tmp_path / "model", failing)
    assert not list(tmp_path.iterdir())
    assert re.fullmatch(rf"\.model\.lora-hyper-tmp-{os.getpid()}-[0-9a-f]+", names[0]), names
    atomic_directory_write(tmp_path / "model", write_marker("old"))
    with pytest.raises(RuntimeError):
        atomic_directory_write(tmp_path / "model", failing, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (tmp_path / "model" / "marker.txt").read_text() == "old"


def test_stale_leftovers_are_swept_by_the_next_write(tmp_path):
    dead = dead_pid()
    stale_tmp = tmp_path / f".model.lora-hyper-tmp-{dead}-abc123"
    stale_tmp.mkdir()
    (stale_tmp / "hypernet.safetensors").write_bytes(b"\0" * 4096)
    (tmp_path / "done").mkdir()
    stale_old = tmp_path / f".done.lora-hyper-old-{dead}-0f0f0f"  # its target exists: delete
    stale_old.mkdir()
    orphan = tmp_path / f".lost.lora-hyper-old-{dead}-1a1a1a"  # its target is gone: the only copy, restore
    orphan.mkdir()
    (orphan / "keep.txt").write_text("previous version")
    if Path(f"/proc/{os.getpid()}/stat").exists():  # pid reuse is detected where start times can be read
        reused = tmp_path / f".reused.lora-hyper-tmp-{os.getpid()}-2b2b2b"  # our pid, but older than us
        reused.mkdir()
        long_ago = time.time() - 10 * 86400
        os.utime(reused, (long_ago, long_ago))
    live = tmp_path / f".busy.lora-hyper-tmp-{os.getpid()}-3c3c3c"  # a write of this process in progress
    live.mkdir()
    unrelated = tmp_path / ".model.tmp-legacy"
    unrelated.mkdir()
    atomic_directory_write(tmp_path / "next", write_marker("x"))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["done", "lost", "next", live.name, unrelated.name])
    assert (tmp_path / "lost" / "keep.txt").read_text() == "previous version"


@pytest.mark.parametrize(("umask", "dir_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_written_permissions_follow_the_umask(tmp_path, tiny_llama, umask, dir_mode, file_mode):
    model, _ = tiny_llama
    lora = random_lora(LoRASpec(["q_proj"], rank=2).discover(model), 1)
    previous = os.umask(umask)
    try:
        plain = atomic_directory_write(tmp_path / "plain", write_marker("x"))
        adapter = save_peft(lora, 0, tmp_path / "adapter")
        replaced = atomic_directory_write(plain, write_marker("y"), overwrite=True)
    finally:
        os.umask(previous)
    for d in (plain, adapter, replaced, plain / "sub"):
        assert stat.S_IMODE(d.stat().st_mode) == dir_mode, d
    for f in (plain / "marker.txt", plain / "sub" / "inner.txt", *adapter.iterdir()):
        assert stat.S_IMODE(f.stat().st_mode) == file_mode, f


def test_save_adapter_index_out_of_range_is_one_line(d2l, tmp_path):
    lora = random_lora(d2l.spec, 1)
    with pytest.raises(IndexError) as info:
        d2l.save_adapter(lora, 5, tmp_path / "a")
    assert one_line(info.value) == "adapter index 5 is out of range: the batch holds 1 adapter(s) (0..0)."
    with pytest.raises(IndexError, match="holds 2 adapter"):
        save_peft(random_lora(d2l.spec, 2), -1, tmp_path / "a")
    assert not list(tmp_path.iterdir())


def test_save_pretrained_and_save_adapter_refuse_to_replace_without_overwrite(d2l, d2l_dir, tmp_path):
    from lora_hyper.api.doc_to_lora import DocToLoRA

    before = (d2l_dir / "hypernet.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        d2l.save_pretrained(d2l_dir)
    assert d2l.save_pretrained(d2l_dir, overwrite=True) == d2l_dir
    assert (d2l_dir / "hypernet.safetensors").read_bytes() == before
    assert DocToLoRA.from_pretrained(d2l_dir).spec.to_dict() == d2l.spec.to_dict()  # the checks accept it
    f = tmp_path / "adapter.bin"
    f.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="exists and is a file"):
        d2l.save_adapter(random_lora(d2l.spec, 1), 0, f, overwrite=True)
    assert f.read_bytes() == b"keep"


# ---------------------------------------------------------------------------------------------- checks
def test_valid_safetensors_of_every_dtype_pass(tmp_path, d2l_dir):
    tensors = {
        "f32": torch.randn(3, 4),
        "bf16": torch.randn(5).to(torch.bfloat16),
        "f16": torch.randn(2, 2).half(),
        "i64": torch.arange(7),
        "bool": torch.tensor([True, False, True]),
        "u8": torch.zeros(3, dtype=torch.uint8),
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(1.5),
    }
    save_file(tensors, str(tmp_path / "all.safetensors"), metadata={"format": "pt"})
    validate_safetensors(tmp_path / "all.safetensors")
    save_file({}, str(tmp_path / "none.safetensors"))
    validate_safetensors(tmp_path / "none.safetensors")
    validate_safetensors(d2l_dir / "hypernet.safetensors")


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[:1000])
    elif how == "last-byte-missing":
        path.write_bytes(data[:-1])
    elif how == "trailing-bytes":
        path.write_bytes(data + b"\0" * 8)
    elif how == "random-bytes":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif how == "empty":
        path.write_bytes(b"")
    else:  # a header that is not JSON
        n = int.from_bytes(data[:8], "little")
        path.write_bytes(data[:8] + b"#" * n + data[8 + n :])


DAMAGE = [
    ("truncated", "truncated"),
    ("last-byte-missing", "truncated: header expects"),
    ("trailing-bytes", "file has"),
    ("random-bytes", "not a valid safetensors file"),
    ("empty", "truncated"),
    ("bad-header", "header is not JSON"),
]


@pytest.mark.parametrize(("how", "words"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_broken_d2l_weights_fail_in_one_line_before_the_base_model_loads(
    broken_d2l_dir, no_base_load, how, words
):
    from lora_hyper.api.doc_to_lora import DocToLoRA

    weights = broken_d2l_dir / "hypernet.safetensors"
    _damage(weights, how)
    with pytest.raises(ValueError) as info:
        DocToLoRA.from_pretrained(broken_d2l_dir)
    text = one_line(info.value)
    assert text.startswith(f"{weights} is not a valid safetensors file (") and words in text, text
    assert text.endswith("; re-save or re-download it."), text


def test_truncated_message_gives_both_sizes(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(10, 10)}, str(path))
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError) as info:
        validate_safetensors(path)
    assert one_line(info.value) == (
        f"{path} is not a valid safetensors file (truncated: header expects 400 data bytes, file has 300); "
        "re-save or re-download it."
    )
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match=f"truncated: header length {size - 400 - 8} bytes, file has 20"):
        validate_safetensors(path)


def test_broken_d2l_config_names_the_file_before_the_base_model_loads(broken_d2l_dir, no_base_load):
    from lora_hyper.api.doc_to_lora import DocToLoRA

    cfg = broken_d2l_dir / "lora_hyper.json"
    cfg.write_text('{\n  "format": "lora-hyper/doc-to-lora",\n  "base_model": "x"\n  "spec": {}\n}\n')
    with pytest.raises(ValueError) as info:
        DocToLoRA.from_pretrained(broken_d2l_dir)
    assert one_line(info.value) == (
        f"{cfg}: invalid JSON (Expecting ',' delimiter, line 4); fix or re-save it."
    )
    cfg.write_text(json.dumps({"format": "lora-hyper/doc-to-lora", "base_model": "x"}))
    with pytest.raises(ValueError, match=re.escape(f"{cfg} lacks ['spec', 'hypernet', 'encoder']")):
        DocToLoRA.from_pretrained(broken_d2l_dir)


def test_broken_t2l_dir_fails_in_one_line_before_anything_is_built(tmp_path, monkeypatch):
    from lora_hyper import text_to_lora
    from lora_hyper.api.text_to_lora import TextToLoRA

    def refuse(*args, **kwargs):
        raise AssertionError("the hypernetwork was built before the model dir was checked")

    monkeypatch.setattr(text_to_lora, "TextToLoRAHypernet", refuse)
    cfg, weights = tmp_path / "t2l_config.json", tmp_path / "t2l_model.safetensors"
    config = {"format": "lora-hyper/text-to-lora", "format_version": 1, "base_model": "x"}
    cfg.write_text(json.dumps({**config, "task_encoder": {}, "hypernet": {}}))
    weights.write_bytes(random.Random(1).randbytes(2048))
    with pytest.raises(ValueError) as info:
        TextToLoRA.from_pretrained(tmp_path)
    assert one_line(info.value).startswith(f"{weights} is not a valid safetensors file")
    cfg.write_text('{"format": "lora-hyper/text-to-lora",, }')
    with pytest.raises(ValueError) as info:
        TextToLoRA.from_pretrained(tmp_path)
    assert one_line(info.value).startswith(f"{cfg}: invalid JSON (")


def test_load_peft_checks_config_and_weights(adapter):
    weights, cfg = adapter / "adapter_model.safetensors", adapter / "adapter_config.json"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError) as info:
        load_peft(adapter)
    assert one_line(info.value).startswith(f"{weights} is not a valid safetensors file (truncated")
    weights.write_bytes(good)
    cfg.write_text(cfg.read_text().replace(",", "", 1))
    with pytest.raises(ValueError) as info:
        load_peft(adapter)
    assert one_line(info.value).startswith(f"{cfg}: invalid JSON (Expecting ',' delimiter, line ")


def test_read_json_config(tmp_path):
    path = tmp_path / "c.json"
    with pytest.raises(FileNotFoundError, match="c.json: the thing is missing"):
        read_json_config(path, "the thing")
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="the thing must be a JSON object, found list"):
        read_json_config(path, "the thing")
    path.write_text('{"a": 1}')
    assert read_json_config(path) == {"a": 1}


def test_checks_import_no_torch():
    code = "import sys, lora_hyper.file_io; sys.exit(int('torch' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def ckpt(d2l_module, tmp_path_factory):
    """A Lightning-style checkpoint of the tiny module (what ``trainer.save_checkpoint`` would hold)."""
    state = {"state_dict": d2l_module.state_dict(), "hyper_parameters": dict(d2l_module.hparams)}
    d2l_module.on_save_checkpoint(state)
    path = tmp_path_factory.mktemp("ckpt") / "last.ckpt"
    torch.save(state, path)
    return path


def _cli_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lora-hyper: error: "), err
    return err[0]


def test_export_refuses_an_existing_file_and_replaces_a_dir_only_with_overwrite(ckpt, tmp_path, capsys):
    target = tmp_path / "model"
    target.write_text("not a model")
    err = _cli_error(capsys, ["export", "--ckpt", str(ckpt), "--out", str(target)])
    assert f"{target} exists and is a file; choose another output path." in err
    assert target.read_text() == "not a model"
    target.unlink()
    assert main(["export", "--ckpt", str(ckpt), "--out", str(target)]) == 0
    capsys.readouterr()
    err = _cli_error(capsys, ["export", "--ckpt", str(ckpt), "--out", str(target)])
    assert "--overwrite" in err
    assert main(["export", "--ckpt", str(ckpt), "--out", str(target), "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_internalize_refuses_existing_outputs_before_loading(d2l_dir, tmp_path, capsys, no_base_load):
    doc = tmp_path / "alpha.txt"
    doc.write_text("The special magic number is 1234.")
    argv = ["internalize", "--model", str(d2l_dir), "--doc", str(doc), "--out"]
    out_file = tmp_path / "out.txt"
    out_file.write_text("keep")
    err = _cli_error(capsys, [*argv, str(out_file)])
    assert str(out_file) in err and "is a file" in err and out_file.read_text() == "keep"
    folder = tmp_path / "adapters"
    folder.mkdir()
    (folder / "alpha").write_text("keep too")
    err = _cli_error(capsys, [*argv, str(folder), "--overwrite"])
    assert f"{folder / 'alpha'} exists and is a file; choose another output path." in err
    (folder / "alpha").unlink()
    (folder / "alpha").mkdir()
    err = _cli_error(capsys, [*argv, str(folder)])
    assert f"{folder / 'alpha'} exists; pass overwrite=True (CLI: --overwrite) to replace it." in err


def test_internalize_overwrite_replaces_the_adapter(d2l_dir, tmp_path):
    doc = tmp_path / "alpha.txt"
    doc.write_text("The special magic number is 1234.")
    (tmp_path / "adapters" / "alpha").mkdir(parents=True)
    (tmp_path / "adapters" / "alpha" / "old.txt").write_text("old")
    argv = ["internalize", "--model", str(d2l_dir), "--doc", str(doc), "--out", str(tmp_path / "adapters")]
    assert main([*argv, "--overwrite"]) == 0
    names = sorted(p.name for p in (tmp_path / "adapters" / "alpha").iterdir())
    assert names == ["adapter_config.json", "adapter_model.safetensors"]


def test_generate_refuses_an_existing_file_before_loading(tmp_path, capsys):
    target = tmp_path / "adapter"
    target.write_text("keep")
    err = _cli_error(capsys, ["generate", "--model", str(tmp_path), "--task", "Sort", "--out", str(target)])
    assert f"{target} exists and is a file" in err and target.read_text() == "keep"
