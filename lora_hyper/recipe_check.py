"""One-line errors for LightningCLI recipes: missing files, misspelled keys and class paths, with the closest name.

``check_paths`` runs before Lightning is imported (a missing recipe fails in well under a second);
``check_recipe`` imports the classes a recipe names and compares its keys with their signatures.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

from lora_hyper.validation import InputError, MissingPathError

TOP_LEVEL = (
    "seed_everything",
    "model",
    "data",
    "trainer",
    "optimizer",
    "lr_scheduler",
    "ckpt_path",
    "config",
)
_ROOT = Path(__file__).resolve().parents[1]


def config_paths(argv: list[str]) -> list[Path]:
    """The ``--config``/``-c`` files of a LightningCLI command line, in order."""
    paths = []
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            paths.append(Path(argv[i + 1]))
        elif arg.startswith("--config="):
            paths.append(Path(arg.split("=", 1)[1]))
    return paths


def check_paths(argv: list[str]) -> list[Path]:
    """Every ``--config`` file exists and is a YAML mapping (cheap: no Lightning import)."""
    import yaml

    paths = config_paths(argv)
    for p in paths:
        if p.is_dir():
            raise InputError(f"recipe {p} is a directory; give a YAML file, e.g. recipes/quickstart.yaml.")
        if not p.is_file():
            raise MissingPathError(f"recipe file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise InputError(f"recipe {p} is not valid YAML{where}: {getattr(e, 'problem', e)}.") from None
        except UnicodeDecodeError:
            raise InputError(f"recipe {p} is not UTF-8 text.") from None
        if data is not None and not isinstance(data, dict):
            raise InputError(
                f"recipe {p} must be a YAML mapping (model:, data:, trainer:), not a list or a value."
            )
    return paths


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def known_class_paths() -> list[str]:
    """Class paths of the modules and data modules this package defines (found by reading the source)."""
    found = []
    for folder, package in (
        (_ROOT / "lora_hyper" / "modules", "lora_hyper.modules"),
        (_ROOT / "data_modules", "lora_hyper.data_modules"),
        (_ROOT / "lora_hyper" / "data_modules", "lora_hyper.data_modules"),
        (_ROOT / "callbacks", "lora_hyper.callbacks"),
        (_ROOT / "lora_hyper" / "callbacks", "lora_hyper.callbacks"),
    ):
        for f in sorted(folder.glob("*.py")) if folder.is_dir() else []:
            for name in re.findall(r"^class (\w+)\(", f.read_text(encoding="utf-8"), flags=re.M):
                if not name.startswith("_"):
                    found.append(f"{package}.{f.stem}.{name}")
    return sorted(set(found))


def _suggest(name: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _import_class(path: str, where: str, recipe: str) -> Any:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        known = known_class_paths()
        close = difflib.get_close_matches(path, known, n=1, cutoff=0.5)
        if not close:  # a right class name under a wrong module path
            close = [k for k in known if k.rsplit(".", 1)[-1] == name][:1]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"{recipe}: {where}.class_path {path!r} cannot be imported{hint}") from None


def _groups(cls: Any) -> dict[str, type]:
    """The argument groups (dataclass-typed ``__init__`` parameters) of a training module, else none."""
    from lora_hyper.modules.args import arg_groups

    try:
        return arg_groups(cls)
    except Exception:  # unresolvable annotations: leave the check to jsonargparse
        return {}


def _check_args(cls: Any, args: dict[str, Any], where: str, recipe: str) -> None:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    names = [n for n in params if n != "self"]
    groups = _groups(cls)
    for key, value in args.items():
        if key not in params:
            moved = _moved(cls, key)
            if moved:
                raise InputError(
                    f"{recipe}: {where}.{key} is now {where}.{moved} (the module's arguments are grouped, "
                    "see lora_hyper/modules/args.py)"
                )
            raise InputError(
                f"{recipe}: {where}.{key} is not a parameter of {cls.__name__}{_suggest(key, names)}"
            )
        if key in groups and isinstance(value, dict):
            fields = [f.name for f in dataclasses.fields(groups[key])]
            for name in value:
                if name not in fields:
                    raise InputError(
                        f"{recipe}: {where}.{key}.{name} is not a field of {key} ({groups[key].__name__})"
                        f"{_suggest(str(name), fields)}"
                    )


def _moved(cls: Any, key: str) -> str | None:
    """Where a flat argument of the layout before the argument groups lives now (``lr`` -> ``optim.lr``)."""
    if not _groups(cls):
        return None
    from lora_hyper.modules.args import legacy_key

    return legacy_key(cls, key)


def _check_section(section: Any, where: str, recipe: str) -> None:
    if isinstance(section, dict) and "class_path" in section:
        cls = _import_class(str(section["class_path"]), where, recipe)
        init = section.get("init_args") or {}
        if isinstance(init, dict):
            _check_args(cls, init, f"{where}.init_args", recipe)
        extra = sorted(set(section) - {"class_path", "init_args", "dict_kwargs"})
        if extra:
            raise InputError(
                f"{recipe}: {where}.{extra[0]} is not expected (use {where}.init_args.{extra[0]})."
            )


def _dotted_overrides(argv: list[str]) -> list[str]:
    """Keys given on the command line as ``--a.b.c value`` or ``--a.b.c=value``."""
    return [a[2:].split("=", 1)[0] for a in argv if a.startswith("--") and "." in a.split("=", 1)[0]]


def check_recipe(argv: list[str]) -> None:
    """Keys and class paths of the recipes and dotted overrides against the classes they name."""
    import yaml

    paths = check_paths(argv)
    if not paths:
        return
    recipe = ", ".join(str(p) for p in paths)
    cfg: dict[str, Any] = {}
    for p in paths:
        cfg = _merge(cfg, yaml.safe_load(p.read_text(encoding="utf-8")) or {})
    for key in cfg:
        if key not in TOP_LEVEL:
            raise InputError(f"{recipe}: top-level key {key!r} is not expected{_suggest(key, TOP_LEVEL)}")
    for where in ("model", "data"):
        _check_section(cfg.get(where), where, recipe)
    trainer = cfg.get("trainer") or {}
    if isinstance(trainer, dict):
        from lightning.pytorch import Trainer

        _check_args(Trainer, {k: v for k, v in trainer.items() if k != "callbacks"}, "trainer", recipe)
        for i, cb in enumerate(trainer.get("callbacks") or []):
            _check_section(cb, f"trainer.callbacks[{i}]", recipe)
    for dotted in _dotted_overrides(argv):
        parts = dotted.split(".")
        if parts[0] in ("model", "data") and len(parts) in (3, 4) and parts[1] == "init_args":
            section = cfg.get(parts[0])
            if isinstance(section, dict) and "class_path" in section:
                cls = _import_class(str(section["class_path"]), parts[0], recipe)
                value = {parts[3]: None} if len(parts) == 4 else None
                _check_args(cls, {parts[2]: value}, f"--{parts[0]}.init_args", "command line")


def summarize_parse_error(text: str) -> str:
    """The most telling line of a jsonargparse error dump (no usage text)."""
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("usage:", "["))
    ]
    nested = [i for i, ln in enumerate(lines) if re.match(r'(error: )?Parser key "[^"]+":$', ln)]
    if nested and nested[-1] + 1 < len(
        lines
    ):  # the innermost key and its problem (e.g. a group field's type)
        key = re.search(r'"([^"]+)"', lines[nested[-1]]).group(1)  # type: ignore[union-attr]
        problem = lines[nested[-1] + 1]
        if not problem.startswith(("Does not validate", "Problem with")):
            return f"{key}: {problem}"
    for pattern in ("is not accepted", "not expected", "Unrecognized arguments", "does not exist", "error:"):
        for ln in lines:
            if pattern in ln:
                return ln.removeprefix("error: ")
    return lines[-1] if lines else "invalid command line or recipe"


def first_cause(text: str) -> str:
    """The first real error inside jsonargparse's "Does not validate against any of the Union subtypes" text."""
    flat = " ".join(text.split())
    match = re.search(r"Errors: - (.+?)(?: - Expected a| Given value|$)", flat)
    return match.group(1).strip() if match else flat
