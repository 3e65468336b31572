"""The Caltech-101 folder loader (on images the test writes) and the generated demo set."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mahppo.compression.data import Caltech101Folder, DataSpec, SyntheticPatterns, make_datasets


@pytest.fixture()
def tiny_caltech(tmp_path):
    root = tmp_path / "caltech" / "101_ObjectCategories"
    counts = {"accordion": 10, "airplanes": 5, "BACKGROUND_Google": 3, "camera": 7}
    for c, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            mode = "L" if i % 3 == 0 else "RGB"  # Caltech-101 has some grey-scale images
            colour = (i * 20) % 255 if mode == "L" else (c * 60, i * 20, 100)
            Image.new(mode, (300 - i, 200 + i), colour).save(root / name / f"image_{i:04d}.jpg")
    (root / "camera" / "notes.txt").write_text("not an image")
    return tmp_path / "caltech", counts


def test_caltech_split_is_80_20_per_class_and_disjoint(tiny_caltech):
    root, counts = tiny_caltech
    train = Caltech101Folder(root, train=True)
    test = Caltech101Folder(root, train=False)
    assert train.classes == ["accordion", "airplanes", "camera"]  # background class skipped
    assert train.num_classes == 3
    for label, name in enumerate(train.classes):
        n_train = sum(1 for _, y in train.samples if y == label)
        n_test = sum(1 for _, y in test.samples if y == label)
        assert n_train + n_test == counts[name]
        assert n_train == round(0.8 * counts[name])
    assert not {p for p, _ in train.samples} & {p for p, _ in test.samples}
    # the split is reproducible
    assert Caltech101Folder(root, train=True).samples == train.samples


def test_caltech_images_are_resized_and_cropped_to_224(tiny_caltech):
    root, _ = tiny_caltech
    for train in (True, False):
        ds = Caltech101Folder(root, train=train)
        x, y = ds[0]
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32
        assert isinstance(y, int)


def test_caltech_via_make_datasets_and_reduced_size(tiny_caltech):
    root, _ = tiny_caltech
    train, test, n = make_datasets(DataSpec(kind="caltech101", root=str(root), image_size=32))
    assert n == 3 and len(train) + len(test) == 22
    assert train[0][0].shape == (3, 32, 32)


def test_missing_or_empty_data_folder_names_it(tmp_path):
    with pytest.raises(ValueError, match="--data.*does not exist"):
        Caltech101Folder(tmp_path / "nope", train=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="--data.*no class"):
        Caltech101Folder(tmp_path / "empty", train=True)


def test_synthetic_patterns_are_deterministic_labelled_and_class_dependent():
    a = SyntheticPatterns(num_classes=4, per_class=6, image_size=32, seed=3)
    b = SyntheticPatterns(num_classes=4, per_class=6, image_size=32, seed=3)
    assert len(a) == 24 and torch.equal(a.images, b.images)
    assert sorted(set(a.labels.tolist())) == [0, 1, 2, 3]
    test = SyntheticPatterns(num_classes=4, per_class=6, image_size=32, seed=3, split="test")
    assert not torch.equal(a.images, test.images)
    # a nearest-class-mean classifier on the spectrum beats chance: labels carry signal
    def feats(ds):
        return torch.fft.rfft2(ds.images).abs().flatten(1)
    means = torch.stack([feats(a)[a.labels == c].mean(0) for c in range(4)])
    pred = torch.cdist(feats(test), means).argmin(1)
    assert float((pred == test.labels).float().mean()) > 0.5
