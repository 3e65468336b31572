"""Data sets: Caltech-101 from a local folder (paper Sec. 6.1) and a generated demo set.

* :class:`Caltech101Folder` reads ``ROOT/<class>/<image>`` (or ``ROOT/101_ObjectCategories/...``),
  splits every class 80/20 with a fixed seed, resizes to 256x256 and crops 224x224 (random crop for
  training, centre crop for testing), as in Sec. 6.1. Nothing is downloaded.
* :class:`SyntheticPatterns` is the bundled demo/test set: labelled colour gratings generated from a
  seed, whose orientation, frequency and colour depend on the class, with random phase, jitter and
  noise. It needs no files and is what ``mahppo compress`` uses when ``--data`` is not given.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SKIP_CLASSES = ("BACKGROUND_Google",)


@dataclass(frozen=True)
class DataSpec:
    """A picklable description of a data set, rebuilt inside each Ray task."""

    kind: str = "synthetic"  # "synthetic" or "caltech101"
    root: str | None = None
    image_size: int = 32  # training crop size; 224 is the paper's
    num_classes: int = 10  # synthetic only
    train_per_class: int = 60  # synthetic only
    test_per_class: int = 20  # synthetic only
    seed: int = 0
    train_fraction: float = 0.8  # caltech101 only

    def to_dict(self) -> dict:
        return asdict(self)


def check_data_folder(root: str | Path) -> Path:
    """Raise ``ValueError`` naming ``--data`` when the folder is missing or holds no class folders."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ValueError(f"--data: data folder {str(root)!r} does not exist")
    if (path / "101_ObjectCategories").is_dir():
        path = path / "101_ObjectCategories"
    classes = [d for d in path.iterdir() if d.is_dir() and d.name not in SKIP_CLASSES]
    if not classes:
        raise ValueError(f"--data: data folder {str(root)!r} has no class sub-folders")
    return path


class Caltech101Folder(Dataset):
    """Caltech-101 from a local folder with the paper's 80/20 per-class split (Sec. 6.1)."""

    def __init__(self, root: str | Path, train: bool, image_size: int = 224, train_fraction: float = 0.8,
                 seed: int = 0) -> None:
        from torchvision import transforms as T

        self.root = check_data_folder(root)
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir() and d.name not in SKIP_CLASSES)
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            files = sorted(p for p in (self.root / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            random.Random(f"{seed}:{name}").shuffle(files)
            n_train = int(round(train_fraction * len(files)))
            if len(files) >= 2:
                n_train = min(max(n_train, 1), len(files) - 1)
            chosen = files[:n_train] if train else files[n_train:]
            self.samples.extend((p, label) for p in chosen)
        resize = int(round(image_size * 256 / 224))
        crop = T.RandomCrop(image_size) if train else T.CenterCrop(image_size)
        self.transform = T.Compose([
            T.Resize((resize, resize)),
            crop,
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[index]
        with Image.open(path) as img:
            return self.transform(img.convert("RGB")), label


class SyntheticPatterns(Dataset):
    """Generated labelled colour gratings: the bundled demo data set (no files, no download).

    Class ``c`` fixes a grating orientation, a spatial frequency and a colour; every sample adds a
    random phase, orientation jitter, a random offset blob and Gaussian noise, so the task is learnable
    but not trivial.
    """

    def __init__(self, num_classes: int = 10, per_class: int = 60, image_size: int = 64, seed: int = 0,
                 split: str = "train") -> None:
        if num_classes < 2:
            raise ValueError(f"--classes: need at least 2 classes, got {num_classes}")
        self.num_classes = int(num_classes)
        self.image_size = int(image_size)
        offset = 0 if split == "train" else 1_000_003
        gen = torch.Generator().manual_seed(int(seed) * 7919 + offset)
        cls_gen = torch.Generator().manual_seed(int(seed))  # class parameters shared by both splits
        n_cls = self.num_classes
        theta = torch.arange(n_cls, dtype=torch.float32) * math.pi / n_cls
        freq = 2.0 + 4.0 * torch.rand(n_cls, generator=cls_gen)
        colour = torch.rand(n_cls, 3, generator=cls_gen) * 2 - 1
        labels = torch.arange(n_cls).repeat_interleave(int(per_class))
        n = labels.numel()
        s = self.image_size
        coords = torch.linspace(-0.5, 0.5, s)
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        th = theta[labels] + 0.15 * torch.randn(n, generator=gen)
        phase = 2 * math.pi * torch.rand(n, generator=gen)
        f = freq[labels] * (1 + 0.1 * torch.randn(n, generator=gen))
        arg = 2 * math.pi * f[:, None, None] * (
            xx[None] * torch.cos(th)[:, None, None] + yy[None] * torch.sin(th)[:, None, None]
        ) + phase[:, None, None]
        grating = torch.sin(arg)  # (n, s, s)
        images = colour[labels][:, :, None, None] * grating[:, None]
        centre = torch.rand(n, 2, generator=gen) - 0.5
        blob = torch.exp(-((xx[None] - centre[:, 0, None, None]) ** 2 + (yy[None] - centre[:, 1, None, None]) ** 2)
                         / 0.02)
        images = images + (torch.rand(n, 3, generator=gen) * 2 - 1)[:, :, None, None] * blob[:, None]
        images = images + 0.6 * torch.randn(images.shape, generator=gen)
        self.images = images.contiguous()
        self.labels = labels

    def __len__(self) -> int:
        return self.labels.numel()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


def make_datasets(spec: DataSpec | dict) -> tuple[Dataset, Dataset, int]:
    """``(train, test, num_classes)`` for a :class:`DataSpec` (or its dict)."""
    if isinstance(spec, dict):
        spec = DataSpec(**spec)
    if spec.kind == "synthetic":
        train = SyntheticPatterns(spec.num_classes, spec.train_per_class, spec.image_size, spec.seed, "train")
        test = SyntheticPatterns(spec.num_classes, spec.test_per_class, spec.image_size, spec.seed, "test")
        return train, test, spec.num_classes
    if spec.kind == "caltech101":
        if spec.root is None:
            raise ValueError("--data: a Caltech-101 folder is required")
        train = Caltech101Folder(spec.root, True, spec.image_size, spec.train_fraction, spec.seed)
        test = Caltech101Folder(spec.root, False, spec.image_size, spec.train_fraction, spec.seed)
        return train, test, train.num_classes
    raise ValueError(f"--data: unknown data kind {spec.kind!r}")
