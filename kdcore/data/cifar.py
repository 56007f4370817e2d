"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009), the benchmarks of the distillation literature.

Optional: the images come through torchvision, which is imported only when a CIFAR dataset is
loaded and downloads the archives once into ``cache_dir() / "torchvision"``. The official test set
is the test split (``data.test_fraction`` does not apply); validation is carved, stratified, from
the official training set. Training images are not augmented (no random crop or flip), so
accuracies sit below the literature's.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from kdcore.data.splits import DatasetSplits, Split, cache_dir
from kdcore.registry import register_dataset

# Per-channel mean and std of each training set (the CIFAR-100 values are RepDistiller's).
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}
MAX_SHIFT = 4  # pixels, the padding of the usual random-crop augmentation
NOISE = 0.1
SHIFT = (f"each test image translated by up to {MAX_SHIFT} pixels in each direction (zero fill), "
         f"plus Gaussian pixel noise (std {NOISE})")


def shifted(x: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed random translation of each (C, H, W) image in [0, 1], zero-filled, plus Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    moves = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (len(x), 2), generator=g)
    padded = torch.nn.functional.pad(x, (MAX_SHIFT,) * 4)  # (N, C, H + 8, W + 8)
    height, width = x.shape[-2:]
    out = torch.stack([padded[i, :, MAX_SHIFT + dy:MAX_SHIFT + dy + height, MAX_SHIFT + dx:MAX_SHIFT + dx + width]
                       for i, (dy, dx) in enumerate(moves.tolist())])
    return (out + NOISE * torch.randn(out.shape, generator=g)).clamp(0, 1)


def load_cifar(name: str, num_classes: int, cfg) -> DatasetSplits:
    """Download (once) and split CIFAR-10 or CIFAR-100 into normalised train / val / test / shifted test."""
    try:
        from torchvision import datasets
    except ImportError:
        raise RuntimeError(f"dataset {name} needs torchvision (pip install torchvision) and internet access "
                           "for the first download") from None
    source = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    root = cache_dir() / "torchvision"
    root.mkdir(parents=True, exist_ok=True)
    train_set, test_set = (source(str(root), train=train, download=True) for train in (True, False))
    x_train, x_test = to_unit(train_set.data), to_unit(test_set.data)  # (N, 3, 32, 32) in [0, 1]
    y_train, y_test = (np.asarray(d.targets, dtype=np.int64) for d in (train_set, test_set))
    train, val = train_test_split(np.arange(len(y_train)), test_size=cfg.val_fraction, stratify=y_train,
                                  random_state=cfg.split_seed)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in STATS[name])

    def split(x: torch.Tensor, y: np.ndarray) -> Split:
        return Split((x - mean) / std, torch.as_tensor(y))

    return DatasetSplits(name, split(x_train[train], y_train[train]), split(x_train[val], y_train[val]),
                         split(x_test, y_test), split(shifted(x_test, cfg.split_seed + 1), y_test),
                         num_classes=num_classes, input_shape=(3, 32, 32), shift=SHIFT)


def to_unit(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) float32 in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)


@register_dataset("cifar10", input_shape=(3, 32, 32), num_classes=10, generated=False, modality="image",
                  downloads=True)
def cifar10(cfg) -> DatasetSplits:
    """CIFAR-10: 60,000 32x32 colour images of 10 classes (needs torchvision; downloaded once)."""
    return load_cifar("cifar10", 10, cfg)


@register_dataset("cifar100", input_shape=(3, 32, 32), num_classes=100, generated=False, modality="image",
                  downloads=True)
def cifar100(cfg) -> DatasetSplits:
    """CIFAR-100: 60,000 32x32 colour images of 100 classes (needs torchvision; downloaded once)."""
    return load_cifar("cifar100", 100, cfg)
