"""The split containers every dataset returns, the stratified splitter and the loader entry point."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from kdcore.registry import DATASETS


@dataclass(frozen=True)
class Split:
    """Inputs and integer labels of one split, as tensors on the CPU."""

    x: torch.Tensor  # (N, *input_shape) float32
    y: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class DatasetSplits:
    """What a dataset hands to the engine.

    ``test_shifted`` has the same labels as ``test`` but inputs from another distribution, for the
    gate that asks whether the student holds up on data the teacher was not trained on.
    ``augment`` (a data source's random crop and flip) transforms each training batch; a study with it
    runs the teacher live, since cached teacher outputs would belong to other inputs.
    ``deterministic`` is False when training batches are augmented at random, which forbids
    caching the teacher's outputs. ``exact_match`` says how sequence accuracy counts: a whole answer
    right (arithmetic), or each token (running text, where no 32-token stretch is ever all right).
    """

    name: str
    train: Split
    val: Split
    test: Split
    test_shifted: Split
    num_classes: int
    input_shape: tuple[int, ...]
    shift: str
    deterministic: bool = True
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    exact_match: bool = True  # sequences: accuracy per whole answer; False (running text): per token

    def __post_init__(self) -> None:
        if self.augment is not None:
            object.__setattr__(self, "deterministic", False)


def stratified_splits(
    x: np.ndarray, y: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[Split, Split, Split]:
    """Stratified, seeded train / val / test split of numpy arrays."""
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    train, val = train_test_split(
        rest, test_size=val_fraction / (1 - test_fraction), stratify=y[rest], random_state=seed
    )
    return tuple(to_split(x[i], y[i]) for i in (train, val, test))  # type: ignore[return-value]


def to_split(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32),
                 torch.as_tensor(np.asarray(y), dtype=torch.int64))


def cache_dir() -> Path:
    """Where generated datasets and checkpoints live: $KDX_CACHE_DIR, else ~/.cache/kdx."""
    root = os.environ.get("KDX_CACHE_DIR") or Path.home() / ".cache" / "kdx"
    return Path(root)


def load_dataset(cfg: object) -> DatasetSplits:
    """Build the splits described by a ``DataConfig`` through the dataset registry."""
    return DATASETS.get(cfg.name)(cfg)  # type: ignore[attr-defined]
