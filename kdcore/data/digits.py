"""scikit-learn's 8x8 handwritten digits (1,797 images, shipped with the package)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from kdcore.data.splits import DatasetSplits, Split, stratified_splits
from kdcore.registry import register_dataset

SHIFT = "each image moved one pixel in a random direction, plus Gaussian noise (std 0.15)"


def shifted(split: Split, seed: int) -> Split:
    """Same labels, another input distribution: a one-pixel translation and pixel noise."""
    g = torch.Generator().manual_seed(seed)
    moves = torch.randint(-1, 2, (len(split), 2), generator=g)
    x = torch.stack([torch.roll(img, shifts=(int(dy), int(dx)), dims=(-2, -1))
                     for img, (dy, dx) in zip(split.x, moves, strict=True)])
    x = x + 0.15 * torch.randn(x.shape, generator=g)
    return Split(x.clamp(0, 1), split.y)


@register_dataset("digits", input_shape=(1, 8, 8), num_classes=10, generated=False, modality="image")
def digits(cfg) -> DatasetSplits:
    """8x8 handwritten digits from scikit-learn, 10 classes, as 1x8x8 images scaled to [0, 1]."""
    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    train, val, test = stratified_splits(x, bunch.target, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
    return DatasetSplits("digits", train, val, test, shifted(test, cfg.split_seed + 1),
                         num_classes=10, input_shape=(1, 8, 8), shift=SHIFT)
