"""ImagenetteDataModule: the released folder layout (real wnids), any ImageFolder tree with a class-name map, a
`datasets` spec (a stand-in module, and the real package on a local imagefolder when installed), the batch contract."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from PIL import Image

from lora_hyper.data_modules.imagenette import ImagenetteDataModule, balanced_subset
from lora_hyper.image_protocol import IMAGENETTE_CLASSES
from lora_hyper.testing_vlm import write_image_folder

WNIDS = list(IMAGENETTE_CLASSES)


@pytest.fixture(scope="module")
def imagenette_root(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imagenette2-320"), WNIDS, per_class=2)


def test_folder_layout_with_real_wnids(imagenette_root):
    dm = ImagenetteDataModule(root=str(imagenette_root), batch_size=4)
    dm.setup()
    assert dm.class_names == list(IMAGENETTE_CLASSES.values())
    assert dm.class_names[0] == "tench" and dm.class_names[-1] == "parachute"
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"images", "labels", "image_ids"}
    assert len(batch["images"]) == 4 and all(
        isinstance(im, Image.Image) and im.mode == "RGB" for im in batch["images"]
    )
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 0, 1, 1]
    assert batch["image_ids"][0].startswith("val/n01440764/")
    assert len(dm.split_items("train")) == 20 and len(dm.split_items("test")) == 20  # test reads val
    assert "dog" in dm.aliases["English springer"]


def test_limit_takes_classes_in_turn(imagenette_root):
    dm = ImagenetteDataModule(root=str(imagenette_root), limit=10)
    assert sorted(it.label for it in dm.split_items("val")) == list(range(10))
    assert balanced_subset(dm.split_items("val"), None) == dm.split_items("val")


def test_any_image_folder_with_a_class_name_map(tmp_path):
    root = write_image_folder(tmp_path / "pets", ["c0", "c1", "c2"], per_class=1, splits=("val",))
    dm = ImagenetteDataModule(root=str(root), class_names={"c0": "cat", "c1": "dog"}, aliases={})
    dm.setup()
    assert dm.class_names == ["cat", "dog", "c2"] and dm.aliases == {}


def test_bad_sources_fail_clearly(tmp_path, imagenette_root):
    with pytest.raises(ValueError, match="exactly one of `root`"):
        ImagenetteDataModule()
    with pytest.raises(ValueError, match="exactly one of `root`"):
        ImagenetteDataModule(root="x", dataset="frgfm/imagenette")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImagenetteDataModule(root=str(tmp_path / "missing")).setup()
    (tmp_path / "empty" / "val" / "n01440764").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        ImagenetteDataModule(root=str(tmp_path / "empty")).setup()
    (imagenette_root / "val" / "n01440764" / "broken.png").write_bytes(b"not a png")
    dm = ImagenetteDataModule(root=str(imagenette_root))
    try:
        with pytest.raises(ValueError, match="broken.png is not an image"):
            list(dm.val_dataloader())
    finally:
        (imagenette_root / "val" / "n01440764" / "broken.png").unlink()


def _fake_datasets(rows, names):
    """A stand-in `datasets` module whose load_dataset returns ``rows`` with a ClassLabel-like label feature."""

    class Rows(list):
        column_names = ["image", "label"]
        features = {"label": types.SimpleNamespace(names=names), "image": object()}

        def __getitem__(self, key):
            return [r[key] for r in self] if isinstance(key, str) else list.__getitem__(self, key)

    calls = []

    def load_dataset(split, **kwargs):
        calls.append((kwargs, split))
        return Rows(rows)

    return types.SimpleNamespace(load_dataset=load_dataset), calls


def test_datasets_spec_with_integer_labels(monkeypatch):
    img = Image.new("RGB", (8, 8), (255, 0, 0))
    fake, calls = _fake_datasets([{"image": img, "label": 9}, {"image": img, "label": 0}], WNIDS)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    dm = ImagenetteDataModule(dataset={"path": "frgfm/imagenette", "name": "320px"}, batch_size=2)
    dm.setup()
    assert calls[0] == ({"path": "frgfm/imagenette", "name": "320px"}, "validation")
    assert dm.class_names[9] == "parachute"
    batch = next(iter(dm.val_dataloader()))
    assert batch["labels"].tolist() == [9, 0] and batch["image_ids"] == ["validation-0", "validation-1"]


def test_datasets_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"):
        ImagenetteDataModule(dataset="frgfm/imagenette").setup()


def test_real_datasets_on_a_local_imagefolder(imagenette_root):
    pytest.importorskip("datasets")
    spec = {"path": "imagefolder", "data_dir": str(imagenette_root)}
    dm = ImagenetteDataModule(dataset=spec, splits={"val": "validation"})
    dm.setup()
    assert dm.class_names == list(IMAGENETTE_CLASSES.values())
    assert len(dm.split_items("val")) == 20
