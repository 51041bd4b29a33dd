"""The library's layers point one way: lora <- hypernets, base_model <- encoders <- internalize <- api <- modules,
commands; data_modules and callbacks sit on top and the library never imports them (any import, lazy included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "lora_hyper"
# package (or module) -> the lora_hyper packages it must never import
FORBIDDEN = {
    "lora": ("hypernets", "encoders", "internalize", "api", "modules", "commands", "demo"),
    "hypernets": ("encoders", "internalize", "api", "modules", "commands", "demo"),
    "encoders": ("internalize", "api", "modules", "commands", "demo"),
    "internalize": ("api", "modules", "commands", "demo"),
    "api": ("modules", "commands", "demo"),
}
ON_TOP = ("data_modules", "callbacks")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _part(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return rel[0] if len(rel) > 1 else path.stem


LIBRARY = sorted(p for p in ROOT.rglob("*.py") if "assets" not in p.parts)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_one_way(path):
    part = _part(path)
    for name in _imports(path):
        top = name.split(".")
        assert top[0] not in ON_TOP, f"{path.name} imports {name}: the library never imports {ON_TOP}"
        if top[0] == "lora_hyper" and len(top) > 1:
            assert top[1] not in ON_TOP, f"{path.name} imports {name}: the library never imports {ON_TOP}"
            assert top[1] not in FORBIDDEN.get(part, ()), (
                f"{part}/{path.name} imports {name} (a higher layer)"
            )
