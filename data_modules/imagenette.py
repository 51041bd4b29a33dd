"""ImagenetteDataModule: labelled images (Imagenette folder layout, any ImageFolder tree, or a `datasets` spec).

Batches follow the image-classification contract in ``data_modules/collate.py``. Doc-to-LoRA trains on text
only; these images are what ``ImageClassificationEvaluation`` shows a VLM context encoder at evaluation.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from lora_hyper.image_protocol import IMAGENETTE_ALIASES, IMAGENETTE_CLASSES
from lora_hyper.images import load_image

from .hf_datasets import load_split

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
FOLDER_SPLITS = {"train": "train", "val": "val", "test": "val"}  # Imagenette releases have no test split
DATASET_SPLITS = {"train": "train", "val": "validation", "test": "validation"}


@dataclass
class ImageItem:
    """One labelled image: a file path or an in-memory image, its class index and an identifier."""

    source: Any
    label: int
    image_id: str


def class_name(key: Any, names: Mapping[Any, str] | Sequence[str] | None = None) -> str:
    """Readable class name of a folder name / label: the given map first, then Imagenette's wnids, else itself."""
    if isinstance(names, Mapping) and key in names:
        return str(names[key])
    if (
        isinstance(names, Sequence)
        and not isinstance(names, str)
        and isinstance(key, int)
        and key < len(names)
    ):
        return str(names[key])
    return IMAGENETTE_CLASSES.get(str(key), str(key))


def folder_classes(root: Path, splits: Sequence[str]) -> list[str]:
    """Class folder names (sorted, as ImageFolder does) found under ``root/<split>/`` of the given splits."""
    found = {p.name for s in splits if (root / s).is_dir() for p in (root / s).iterdir() if p.is_dir()}
    return sorted(found)


def read_image_folder(root: str | Path, split_dir: str, classes: Sequence[str]) -> list[ImageItem]:
    """Every image file under ``root/split_dir/<class>/`` (labels index ``classes``), in a stable order."""
    base = Path(root).expanduser() / split_dir
    if not base.is_dir():
        raise FileNotFoundError(
            f"Image folder {str(base)!r} does not exist (expected {split_dir}/<class>/<image>)."
        )
    items = []
    for label, folder in enumerate(classes):
        files = sorted(p for p in (base / folder).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        items += [ImageItem(str(f), label, f"{split_dir}/{folder}/{f.name}") for f in files]
    if not items:
        raise ValueError(f"{base}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders.")
    return items


def load_image_dataset(
    spec: str | Mapping[str, Any], split: str, image_column: str = "image", label_column: str = "label"
) -> tuple[list[ImageItem], list[Any]]:
    """Items and raw class keys (ClassLabel names, else sorted label values) of one split of a ``datasets`` spec
    (a hub name such as ``frgfm/imagenette`` or ``load_dataset`` kwargs such as ``{"path": "imagefolder", ...}``)."""
    rows, name = load_split(spec, split)
    missing = [c for c in (image_column, label_column) if c not in rows.column_names]
    if missing:
        raise ValueError(f"{name}[{split}] has no column {missing[0]!r} (columns: {rows.column_names}).")
    feature = rows.features[label_column]
    labels = list(rows[label_column])
    named = hasattr(feature, "names")  # a ClassLabel: integer labels with names
    keys: list[Any] = list(feature.names) if named else sorted(set(labels))
    index = {k: i for i, k in enumerate(keys)}
    items = [  # images decode when indexed, not all at once here
        ImageItem(partial(_row_image, rows, n, image_column), i if named else index[i], f"{split}-{n}")
        for n, i in enumerate(labels)
    ]
    if not items:
        raise ValueError(f"{name}[{split}]: no images.")
    return items, keys


def _row_image(rows: Any, n: int, column: str) -> Any:
    return rows[n][column]


class ImageDataset(Dataset):
    """Images of one split, read (RGB) when indexed."""

    def __init__(self, items: list[ImageItem]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.items[i]
        source = item.source() if callable(item.source) else item.source
        return {
            "image": load_image(source, f"image {item.image_id}"),
            "label": item.label,
            "id": item.image_id,
        }


def collate_images(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The image-classification batch: ``images`` (PIL, RGB), ``labels`` [n] and ``image_ids``."""
    return {
        "images": [r["image"] for r in rows],
        "labels": torch.tensor([r["label"] for r in rows], dtype=torch.long),
        "image_ids": [r["id"] for r in rows],
    }


def balanced_subset(items: Sequence[ImageItem], n: int | None, seed: int = 0) -> list[ImageItem]:
    """At most ``n`` items, classes taking turns (a seeded shuffle within each class); ``None``: all."""
    if n is None or n >= len(items):
        return list(items)
    by_class: dict[int, list[ImageItem]] = {}
    for it in items:
        by_class.setdefault(it.label, []).append(it)
    rng = random.Random(seed)
    for group in by_class.values():
        rng.shuffle(group)
    out: list[ImageItem] = []
    while len(out) < n:
        for label in sorted(by_class):
            if by_class[label] and len(out) < n:
                out.append(by_class[label].pop())
    return out


class ImagenetteDataModule(L.LightningDataModule):
    """Labelled images for image classification through a VLM context encoder (Imagenette by default).

    Sources: ``root``, a folder in the layout of the released Imagenette archives (``train/`` and ``val/``, one
    ``n0...`` wnid folder per class; wnids map to class names built in), or any ImageFolder-style tree with
    ``class_names`` mapping folder names to class names; or ``dataset``, a ``datasets`` spec such as
    ``{"path": "frgfm/imagenette", "name": "320px"}`` (integer labels, in the wnid order).

    Args:
        root: ImageFolder root holding one folder per split.
        dataset: a ``datasets`` spec instead of ``root`` (needs ``pip install datasets``).
        splits: where train/val/test come from (folder names or dataset split names; defaults: ``train``, ``val``
            and ``val`` again for test with ``root``; ``train``, ``validation``, ``validation`` with ``dataset``).
        class_names: readable class names: a map from folder name (or ClassLabel name) to name, or a list in label
            order (default: Imagenette's for wnids, else the folder / label name itself).
        aliases: other names of each class used to score free-text answers (default: Imagenette's).
        image_column: image column of a ``dataset``.
        label_column: label column of a ``dataset``.
        batch_size: images per batch.
        limit: at most this many images per split, classes taking turns (``None``: all).
        seed: seed of the ``limit`` subset.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        root: str | None = None,
        dataset: str | dict[str, Any] | None = None,
        splits: dict[str, str] | None = None,
        class_names: dict[str, str] | list[str] | None = None,
        aliases: dict[str, list[str]] | None = None,
        image_column: str = "image",
        label_column: str = "label",
        batch_size: int = 8,
        limit: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if (root is None) == (dataset is None):
            raise ValueError(
                "ImagenetteDataModule needs exactly one of `root` (an image folder) or `dataset`."
            )
        if batch_size < 1 or (limit is not None and limit < 1):
            raise ValueError(f"batch_size and limit must be >= 1, got {batch_size} and {limit}.")
        self.root = root
        self.dataset = dataset
        self.splits = {**(FOLDER_SPLITS if dataset is None else DATASET_SPLITS), **(splits or {})}
        unknown = set(self.splits) - {"train", "val", "test"}
        if unknown:
            raise ValueError(f"splits keys must be train/val/test, got {sorted(unknown)}.")
        self.names_given = class_names
        self.aliases = dict(aliases) if aliases is not None else dict(IMAGENETTE_ALIASES)
        self.image_column = image_column
        self.label_column = label_column
        self.batch_size = batch_size
        self.limit = limit
        self.seed = seed
        self.num_workers = num_workers
        self.class_names: list[str] = []
        self.items: dict[str, list[ImageItem]] = {}

    def split_items(self, split: str) -> list[ImageItem]:
        """The (possibly ``limit``-ed) items of ``train``/``val``/``test``, read once."""
        if split not in self.splits:
            raise ValueError(f"Unknown split {split!r}: use train, val or test.")
        if split not in self.items:
            self.items[split] = balanced_subset(self._read(self.splits[split]), self.limit, self.seed)
        return self.items[split]

    def _read(self, where: str) -> list[ImageItem]:
        if self.root is not None:
            root = Path(self.root).expanduser()
            if not root.is_dir():
                raise FileNotFoundError(f"Image root {str(root)!r} does not exist.")
            keys = folder_classes(root, sorted(set(self.splits.values())))
            if not keys:
                raise ValueError(f"{root}: no class folders under {sorted(set(self.splits.values()))}.")
            items = read_image_folder(root, where, keys)
        else:
            items, keys = load_image_dataset(self.dataset, where, self.image_column, self.label_column)
        names = [class_name(k, self.names_given) for k in keys]
        if self.class_names and names != self.class_names:
            raise ValueError(f"split {where!r} has classes {names}, other splits {self.class_names}.")
        self.class_names = names
        return items

    def setup(self, stage: str | None = None) -> None:
        """Read the evaluation split (``val``) so ``class_names`` is known."""
        self.split_items("val")

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            ImageDataset(self.split_items(split)),
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            collate_fn=collate_images,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("val")
