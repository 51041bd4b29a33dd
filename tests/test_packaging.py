"""Packaging: data_modules/ and callbacks/ ship as lora_hyper.data_modules / lora_hyper.callbacks only."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = "import lora_hyper.data_modules.collate as d, lora_hyper.callbacks as c; print(d.__file__); print(c.__file__)"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("lora_hyper-*.whl"))


@pytest.mark.slow
def test_wheel_file_list(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"lora_hyper", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for required in [
        "lora_hyper/lora/apply.py",
        "lora_hyper/data_modules/collate.py",
        "lora_hyper/callbacks/__init__.py",
    ]:
        assert required in names
    assert not [n for n in names if n.startswith(("data_modules/", "callbacks/", "tests/"))]
    # Every source package folder made it into the wheel (the classic package-dir trap).
    for folder, prefix in [
        ("lora_hyper", "lora_hyper"),
        ("data_modules", "lora_hyper/data_modules"),
        ("callbacks", "lora_hyper/callbacks"),
    ]:
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.relative_to(ROOT / folder).as_posix()
            assert f"{prefix}/{rel}" in names, rel


@pytest.mark.slow
def test_wheel_install_imports_mapped_packages(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert all(line.startswith(str(target)) for line in out.stdout.split()), out.stdout


@pytest.mark.parametrize("cwd", ["repo", "elsewhere"])
def test_source_and_editable_imports(tmp_path, cwd):
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT if cwd == "repo" else tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    files = out.stdout.split()
    assert files[0] == str(ROOT / "data_modules" / "collate.py")
    assert files[1] == str(ROOT / "callbacks" / "__init__.py")
