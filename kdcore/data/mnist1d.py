"""MNIST-1D (Greydanus 2020): ten 1-d templates, padded, translated, sheared and noised.

Generated locally with the ``mnist1d`` package (never downloaded) and cached on disk, keyed by
the generation arguments, so the 40,000-sample set is built once per machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from kdcore.data.splits import DatasetSplits, cache_dir, stratified_splits, to_split
from kdcore.registry import register_dataset

DEFAULT_SAMPLES = 5_000
# The shifted split draws new samples with stronger noise, translation and shear.
SHIFT_ARGS = {"corr_noise_scale": 0.4, "iid_noise_scale": 5e-2, "shear_scale": 1.0, "max_translation": 60}
SHIFT = "new samples with stronger correlated noise (0.4), iid noise (0.05), shear (1.0) and translation (60)"


def generate(num_samples: int, seed: int, **changes: float) -> tuple[np.ndarray, np.ndarray]:
    """Generate (x, y) with mnist1d's ``make_dataset``, read from / written to the disk cache."""
    from mnist1d.data import get_dataset_args, make_dataset  # seconds to import: only a study of MNIST-1D pays

    args = get_dataset_args(as_dict=True)
    args.pop("url")
    args.update(num_samples=num_samples, seed=seed, train_split=1.0, **changes)
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "mnist1d" / f"{key}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return cached["x"], cached["y"]
    state = np.random.get_state()  # make_dataset reseeds numpy's global generator
    try:
        data = make_dataset(_View(args))
    finally:
        np.random.set_state(state)
    x, y = data["x"].astype(np.float32)[:, None], data["y"].astype(np.int64)  # (N, 1, 40)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, x=x, y=y)
    Path(tmp).replace(path)  # atomic: a crash never leaves half a cache file
    return x, y


class _View(dict):
    """Attribute access to the arguments, as ``make_dataset`` expects."""

    __getattr__ = dict.__getitem__


@register_dataset("mnist1d", input_shape=(1, 40), num_classes=10, generated=True, modality="signal")
def mnist1d(cfg) -> DatasetSplits:
    """MNIST-1D: 10 classes of 40-step 1-d signals, generated locally (default 5,000 samples)."""
    n = cfg.n_samples or DEFAULT_SAMPLES
    x, y = generate(n, seed=42)
    train, val, test = stratified_splits(x, y, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
    xs, ys = generate(max(len(test), 100), seed=4242, **SHIFT_ARGS)
    return DatasetSplits("mnist1d", train, val, test, to_split(xs, ys),
                         num_classes=10, input_shape=(1, 40), shift=SHIFT)
