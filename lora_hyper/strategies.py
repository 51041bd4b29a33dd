"""Distributed helpers: the FSDP1 auto-wrap policy for a frozen base + trainable hypernetwork, and FSDP2 sharding."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import nn
from torch.distributed.fsdp.wrap import ModuleWrapPolicy

DEFAULT_WRAP_SUFFIXES = ("DecoderLayer",)


class DecoderLayerWrapPolicy(ModuleWrapPolicy):
    """FSDP1 auto-wrap: every decoder layer of the base model (class name ending in ``DecoderLayer``, e.g.
    ``LlamaDecoderLayer``, ``Gemma2DecoderLayer``) and every module that declares ``fsdp_unit = True`` (the
    hypernetworks do) get their own FSDP unit.

    Classes are matched when wrapping, so one recipe serves every base model.

    Args:
        suffixes: wrap modules whose class name ends with one of these.
        class_names: also wrap modules whose class name is one of these.
    """

    def __init__(self, suffixes: list[str] | None = None, class_names: list[str] | None = None) -> None:
        super().__init__(set())
        self.suffixes = tuple(suffixes) if suffixes else DEFAULT_WRAP_SUFFIXES
        self.class_names = tuple(class_names or ())

    def matches(self, module: nn.Module) -> bool:
        name = type(module).__name__
        return (
            bool(getattr(module, "fsdp_unit", False))
            or name in self.class_names
            or name.endswith(self.suffixes)
        )

    def resolve(self, root: nn.Module) -> set[type[nn.Module]]:
        """The concrete module classes under ``root`` that this policy wraps."""
        classes = {type(m) for m in root.modules() if self.matches(m)}
        self._module_classes = classes
        self._module_classes_str = str(classes)
        return classes

    def _run_policy(
        self, root_module: nn.Module, ignored_modules: set[nn.Module], root_kwargs: dict[str, Any]
    ):
        self.resolve(root_module)
        return super()._run_policy(root_module, ignored_modules, root_kwargs)

    def __call__(self, module: nn.Module, recurse: bool, *args: Any, **kwargs: Any) -> bool:
        if recurse:
            return True
        return self.matches(module)


def shard_fsdp2(module: nn.Module, device_mesh: Any) -> nn.Module:
    """FSDP2: ``fully_shard`` a trainable module over the data-parallel dimension of ``device_mesh``.

    The frozen base model stays replicated (it has no gradients or optimizer state to shard).
    """
    from torch.distributed.fsdp import fully_shard

    mesh = device_mesh
    names = getattr(mesh, "mesh_dim_names", None) or ()
    if "data_parallel" in names:
        mesh = mesh["data_parallel"]
    return fully_shard(module, mesh=mesh)


def is_fsdp2(module: nn.Module) -> bool:
    """Whether ``fully_shard`` was applied to ``module``."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # torch without FSDP2
        return False
    return isinstance(module, FSDPModule)


@contextlib.contextmanager
def unsharded(module: nn.Module) -> Iterator[nn.Module]:
    """Gather an FSDP2 (``fully_shard``) module's parameters for direct use; a no-op for plain modules."""
    unshard = getattr(module, "unshard", None)
    if unshard is None:
        yield module
        return
    unshard()
    try:
        yield module
    finally:
        module.reshard()
