"""Read images for a VLM context encoder: paths, PIL images or arrays in, RGB PIL images out, clear errors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lora_hyper.validation import InputError, MissingPathError

IMAGE_HINT = "give a JPEG, PNG, WebP, BMP or GIF file"


def load_image(source: Any, what: str = "image") -> Any:
    """An RGB ``PIL.Image`` from a path, a PIL image or an ``HxWx3`` uint8 array; a missing, unreadable, damaged
    or non-image file is an :class:`InputError` naming it."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        return source.convert("RGB")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.is_dir():
            raise InputError(f"{what} {path} is a directory, not a file; {IMAGE_HINT}.")
        if not path.is_file():
            raise MissingPathError(f"{what} file not found: {path}")
        try:
            with Image.open(path) as img:
                img.load()
                return img.convert("RGB")
        except UnidentifiedImageError:
            raise InputError(
                f"{what} file {path} is not an image (no known image format); {IMAGE_HINT}."
            ) from None
        except PermissionError:
            raise InputError(f"cannot read {what} file {path}: permission denied.") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"{what} file {path} is damaged or truncated ({e}); {IMAGE_HINT}.") from None
    if hasattr(source, "shape") and hasattr(source, "dtype"):
        try:
            return Image.fromarray(source).convert("RGB")
        except (TypeError, ValueError) as e:
            raise InputError(f"{what} array of shape {tuple(source.shape)} is not an image ({e}).") from None
    raise InputError(
        f"{what} must be a file path, a PIL image or an HxWx3 array, got {type(source).__name__}."
    )


def load_images(sources: Any, what: str = "image") -> list[Any]:
    """A non-empty list of RGB PIL images (a single path or image counts as one)."""
    single = (
        isinstance(sources, (str, os.PathLike)) or hasattr(sources, "convert") or hasattr(sources, "shape")
    )
    items = [sources] if single else list(sources) if isinstance(sources, Sequence) else None
    if items is None:
        raise InputError(f"{what}s must be a path, an image or a list of them, got {type(sources).__name__}.")
    if not items:
        raise InputError(f"No {what}s given.")
    return [load_image(s, f"{what} {i}" if len(items) > 1 else what) for i, s in enumerate(items)]
