"""LoRASpec: which modules of which decoder layers get adapters, their shapes, rank and scale."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from lora_hyper.validation import InputError

_LAYER_CONTAINER_NAMES = ("layers", "h", "blocks", "block", "decoder_layers")


@dataclass
class LoRASpec:
    """Targets, rank and scale of the adapters a hypernetwork emits.

    Args:
        target_modules: module names matched by suffix inside every decoder layer, e.g. ``["q_proj",
            "v_proj"]`` or ``["down_proj"]``; a dotted suffix (``"self_attn.q_proj"``) disambiguates.
        rank: rank of one generated adapter block.
        scale: multiplier applied to ``B @ A`` (the reference D2L uses ``2 * r**1.5``; plain LoRA ``alpha/r``).
        n_layers: number of decoder layers (filled by :meth:`discover`).
        layers_path: dotted path of the decoder-layer ``ModuleList`` (filled by :meth:`discover`).
        module_paths: target name -> dotted path inside one layer (filled by :meth:`discover`).
        shapes: target name -> ``(in_features, out_features)`` (filled by :meth:`discover`).
    """

    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    rank: int = 8
    scale: float = 1.0
    n_layers: int = 0
    layers_path: str = ""
    module_paths: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.target_modules = list(self.target_modules)
        if not self.target_modules:
            raise ValueError(
                "LoRASpec.target_modules is empty: name at least one module, e.g. ['q_proj', 'v_proj']."
            )
        if len(set(self.target_modules)) != len(self.target_modules):
            raise ValueError(f"LoRASpec.target_modules has duplicates: {self.target_modules}.")
        if self.rank < 1:
            raise ValueError(f"LoRASpec.rank must be >= 1, got {self.rank}.")
        self.shapes = {k: (int(v[0]), int(v[1])) for k, v in self.shapes.items()}

    @property
    def resolved(self) -> bool:
        """True once layer count, paths and shapes are known (after :meth:`discover` or loading)."""
        return self.n_layers > 0 and all(t in self.shapes for t in self.target_modules)

    def require_resolved(self) -> None:
        if not self.resolved:
            raise ValueError(
                "LoRASpec is not resolved: call spec.discover(model) first (it reads layer shapes)."
            )

    def in_features(self, target: str) -> int:
        return self.shapes[target][0]

    def out_features(self, target: str) -> int:
        return self.shapes[target][1]

    def module_name(self, target: str, layer: int) -> str:
        """Full dotted name of ``target`` in decoder layer ``layer`` (as in ``model.named_modules()``)."""
        return f"{self.layers_path}.{layer}.{self.module_paths[target]}"

    def discover(self, model: nn.Module) -> LoRASpec:
        """Return a copy of this spec resolved against ``model``: decoder layers, module paths, shapes.

        Every target must be exactly one ``nn.Linear`` in every decoder layer with the same shape in all
        layers; anything else is an error that names the offending layers.
        """
        layers_path, layers = find_decoder_layers(model)
        module_paths: dict[str, str] = {}
        shapes: dict[str, tuple[int, int]] = {}
        for target in self.target_modules:
            paths_per_layer: list[str | None] = []
            shape_per_layer: dict[tuple[int, int], list[int]] = {}
            for i, layer in enumerate(layers):
                matches = [
                    (n, m)
                    for n, m in layer.named_modules()
                    if n and (n == target or n.endswith("." + target)) and isinstance(m, nn.Linear)
                ]
                if len(matches) > 1:
                    names = ", ".join(n for n, _ in matches)
                    raise InputError(
                        f"Target module {target!r} is ambiguous in layer {i} ({names}); use a dotted suffix "
                        f"such as {matches[0][0]!r}."
                    )
                if not matches:
                    paths_per_layer.append(None)
                    continue
                name, lin = matches[0]
                paths_per_layer.append(name)
                shape_per_layer.setdefault((lin.in_features, lin.out_features), []).append(i)
            missing = [i for i, p in enumerate(paths_per_layer) if p is None]
            if len(missing) == len(layers):
                available = sorted(
                    {n.rsplit(".", 1)[-1] for n, m in layers[0].named_modules() if isinstance(m, nn.Linear)}
                )
                close = difflib.get_close_matches(target, available, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise InputError(
                    f"Unknown target module {target!r}: no nn.Linear of that name in the decoder layers.{hint} "
                    f"Available: {available}."
                )
            if missing:
                raise InputError(f"Target module {target!r} is missing in decoder layers {missing}.")
            if len(shape_per_layer) > 1:
                detail = "; ".join(
                    f"(in={s[0]}, out={s[1]}) in layers {ls}" for s, ls in shape_per_layer.items()
                )
                raise InputError(f"Target module {target!r} has different shapes across layers: {detail}.")
            if len(set(paths_per_layer)) > 1:
                raise InputError(
                    f"Target module {target!r} sits at different paths across layers: {set(paths_per_layer)}."
                )
            module_paths[target] = paths_per_layer[0]  # type: ignore[assignment]
            shapes[target] = next(iter(shape_per_layer))
        return LoRASpec(
            target_modules=list(self.target_modules),
            rank=self.rank,
            scale=self.scale,
            n_layers=len(layers),
            layers_path=layers_path,
            module_paths=module_paths,
            shapes=shapes,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shapes"] = {k: list(v) for k, v in self.shapes.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoRASpec:
        return cls(**d)


def _num_hidden_layers(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    for cfg in (config, getattr(config, "text_config", None)):
        n = getattr(cfg, "num_hidden_layers", None)
        if isinstance(n, int):
            return n
    return None


def find_decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Find the ``nn.ModuleList`` of decoder layers (``model.layers`` in Llama/Gemma/Mistral/Qwen)."""
    expected = _num_hidden_layers(model)
    candidates = [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod, nn.ModuleList)
        and name.rsplit(".", 1)[-1] in _LAYER_CONTAINER_NAMES
        and len(mod) > 0
    ]
    if expected is not None:
        exact = [c for c in candidates if len(c[1]) == expected]
        # Prefer the language tower in multimodal models (names without "vision").
        exact.sort(key=lambda c: ("vision" in c[0] or "visual" in c[0], len(c[0])))
        if exact:
            return exact[0]
    if not candidates:
        raise ValueError(
            f"Could not find the decoder layers of {type(model).__name__}: no ModuleList named one of "
            f"{_LAYER_CONTAINER_NAMES}."
        )
    return max(candidates, key=lambda c: len(c[1]))
