"""What every data source shares: the user's own split or a seeded one, label names, the corruption that makes
the shifted test split, image augmentation, and inputs decoded once by a pool of threads, kept in memory or,
when large, in a memory-mapped ``.npy`` that the engine reads batch by batch.

A source (imagefolder, csv, parquet, text, hf_disk) only finds its samples and says how to decode them
(:class:`Inputs`); :func:`assemble` turns that into :class:`DatasetSplits`, the same way for all of them.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from kdcore.config import DATA_SOURCE_DEFAULTS
from kdcore.data.splits import DatasetSplits, Split, cache_dir
from kdcore.digest import content_digest

STREAM_BYTES = 1 << 30  # decoded inputs above this are streamed from disk when data.stream is empty
CHUNK = 256  # samples per decoding task; corruptions are seeded per chunk, so both ways give the same inputs
WORKERS = min(8, os.cpu_count() or 1)
SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}  # a user's name -> ours

NOISE_STD = {"image": 0.1, "tabular": 0.5}
BLUR_SIGMA = 1.0
BRIGHTNESS = 0.3
TOKEN_DROPOUT = 0.1
PAD = 4  # pixels of zero padding around a training image before its random crop
# Corruptions of the test split by modality (the first is the default) and how the study describes them.
SHIFTS: dict[str, dict[str, str]] = {
    "image": {"noise": f"Gaussian noise std {NOISE_STD['image']} on the test images",
              "blur": f"Gaussian blur (sigma {BLUR_SIGMA}) of the test images",
              "brightness": f"brightness of the test images raised by {BRIGHTNESS}"},
    "tabular": {"noise": f"Gaussian noise std {NOISE_STD['tabular']} on the standardised test features"},
    "text": {"token_dropout": f"{TOKEN_DROPOUT:.0%} of the test tokens replaced by random tokens"},
}
# The fields every source reads: data.tokenizer too, which a Hugging Face teacher fills in whatever the data.
COMMON_FIELDS = {"path", "shifted_path", "shift", "stream", "tokenizer"}
# The fields a modality reads besides those (target and columns: per source).
MODALITY_FIELDS = {"image": {"image_size", "augment"}, "tabular": set(), "text": {"max_length"}}


def source_fields(*own: str) -> tuple[str, ...]:
    """The data fields a source takes (registered as its ``fields``: the dashboard shows these): the common
    ones and its own, in the config's order."""
    return tuple(key for key in DATA_SOURCE_DEFAULTS if key in {*COMMON_FIELDS, *own})


FIELD_USE = {"paired_path": "a second sensor's image folder", "image_size": "the size of images",
             "augment": "image augmentation", "max_length": "text",
             "target": "a label column", "columns": "input columns"}


# --- checks that describe() runs, so a wrong field is a config error --------------------------------------------
def check_fields(cfg: Any, source: str, modality: str, where: str, own: Sequence[str] = ()) -> None:
    """A source field this source and modality do not read is an error: it would be silently ignored."""
    takes = {*COMMON_FIELDS, *MODALITY_FIELDS[modality], *own}
    for key, unused in DATA_SOURCE_DEFAULTS.items():
        if key not in takes and getattr(cfg, key) != unused:
            raise ValueError(f"data.{key}: it is for {FIELD_USE[key]}, but {source} reads {modality} data from "
                             f"{where}; leave it empty")


def shift_name(cfg: Any, modality: str) -> str | None:
    """The corruption that makes the shifted test split (None with data.shifted_path)."""
    allowed = SHIFTS[modality]
    if cfg.shifted_path:
        if cfg.shift is not None:
            raise ValueError("data.shift: the shifted test split is your data.shifted_path; leave shift empty or "
                             "drop shifted_path")
        return None
    if cfg.shift is None:
        return next(iter(allowed))
    if cfg.shift not in allowed:
        raise ValueError(f"data.shift: {cfg.shift!r} does not apply to {modality} data; allowed: {', '.join(allowed)}")
    return cfg.shift


def shift_label(cfg: Any, modality: str) -> str:
    """How the study describes its shifted test split."""
    name = shift_name(cfg, modality)
    if name is None:
        return f"your shifted_path {Path(cfg.shifted_path).name}"
    return f"corruption: {SHIFTS[modality][name]}"


def enough(count: int, where: str, field: str = "data.path") -> None:
    """Too few samples to split (3: train, val, test), or none in a shifted file, is an error."""
    needed = 3 if field == "data.path" else 1
    if count < needed:
        raise ValueError(f"{field}: {where} holds {count} sample(s); at least {needed} are needed"
                         + (" (train, val, test)" if needed == 3 else ""))


def user_split(values: Sequence[Any], where: str) -> np.ndarray:
    """A user's split names (train, val or validation, test) as ours; any other value is an error."""
    names = np.array([SPLIT_NAMES.get(str(v).strip().lower(), "") for v in values], dtype=object)
    if (names == "").any():
        bad = values[int(np.flatnonzero(names == "")[0])]
        raise ValueError(f"data.path: split {bad!r} in {where}; allowed: train, val, validation, test")
    for needed in ("train", "test"):
        if not (names == needed).any():
            raise ValueError(f"data.path: {where} has a split but no {needed} samples; give train, test and "
                             "optionally val (else val is carved from train)")
    return names


def label_codes(values: Sequence[Any], field: str, where: str,
                classes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Labels as 0..K-1 in sorted order of their values, with the class names; with ``classes`` given (the main
    data's), labels are looked up in it instead."""
    array = np.asarray(values, dtype=object)
    empty = [i for i, v in enumerate(array) if pd.isna(v)]
    if empty:
        raise ValueError(f"{field}: {len(empty)} empty label(s) in {where} (first at row {empty[0]}); fill or drop "
                         "those rows")
    names = np.array([_name(v) for v in array], dtype=object)
    if classes is None:
        numeric = all(isinstance(v, numbers.Real) for v in array)
        fraction = next((v for v in array if numeric and not float(v).is_integer()), None)
        if fraction is not None:
            raise ValueError(f"{field}: the labels in {where} are numbers like {fraction}; they must be classes "
                             "(whole numbers or names)")
        ordered = sorted(set(array), key=lambda v: v if numeric else str(v))
        classes = list(dict.fromkeys(_name(v) for v in ordered))
        if len(classes) < 2:
            raise ValueError(f"{field}: every label in {where} is {classes[0]!r}; at least 2 classes are needed")
    lookup = {name: i for i, name in enumerate(classes)}
    unknown = [n for n in names if n not in lookup]
    if unknown:
        raise ValueError(f"{field}: label {unknown[0]!r} in {where} is not a class of data.path; classes: "
                         f"{', '.join(classes)}")
    return np.array([lookup[n] for n in names], dtype=np.int64), list(classes)


def _name(value: Any) -> str:
    """A label as a class name: whole numbers without '.0'."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


# --- splits ---------------------------------------------------------------------------------------------------
def split_rows(labels: np.ndarray | None, count: int, user: np.ndarray | None, cfg: Any
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample indices of train, val and test: the user's split where given (val carved from train when it has
    none), else seeded (stratified by ``labels`` where they are classes and every class can be)."""
    if user is not None:
        train, val, test = (np.flatnonzero(user == name) for name in ("train", "val", "test"))
        if not len(val):
            train, val = _cut(train, labels, cfg.val_fraction, cfg.split_seed)
        return train, val, test
    rest, test = _cut(np.arange(count), labels, cfg.test_fraction, cfg.split_seed)
    train, val = _cut(rest, labels, cfg.val_fraction / (1 - cfg.test_fraction), cfg.split_seed)
    return train, val, test


def _cut(rows: np.ndarray, labels: np.ndarray | None, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` split into (kept, held out ``fraction``), stratified when every class has samples enough."""
    strata = labels[rows] if labels is not None and labels.ndim == 1 else None
    try:
        kept, held = train_test_split(rows, test_size=fraction, stratify=strata, random_state=seed)
    except ValueError:  # a class too small to appear on both sides: split without strata
        kept, held = train_test_split(rows, test_size=fraction, random_state=seed)
    return np.sort(kept), np.sort(held)


# --- decoding, in memory or streamed ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Inputs:
    """Samples a source found, not yet decoded: ``decode(indices)`` gives their inputs (n, *shape)."""

    count: int
    shape: tuple[int, ...]
    dtype: np.dtype
    decode: Callable[[np.ndarray], np.ndarray]
    targets: np.ndarray  # (count,) classes, or (count, T) next-token targets

    @property
    def nbytes(self) -> int:
        return self.count * int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


class StreamedArray:
    """The inputs of one split in a memory-mapped file, standing in for their (N, ...) tensor wherever the engine,
    the study and the methods use it: ``len``, ``shape``, ``dtype``, indexing by an int, a slice or an index
    tensor (a CPU tensor of those rows), and ``.to(device)`` (an object whose indexing gives rows on the device).
    Only the rows asked for are read."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array  # (N, ...) np.memmap

    def __len__(self) -> int:
        return len(self.array)

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.array.shape)

    @property
    def dtype(self) -> torch.dtype:
        return torch.from_numpy(np.empty(0, self.array.dtype)).dtype

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def __getitem__(self, index: Any) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        if isinstance(index, np.ndarray) and index.dtype.kind in "iu" and index.ndim == 1:
            order = np.argsort(index, kind="stable")  # read in file order, then put back in the batch's
            rows = np.empty((len(index), *self.array.shape[1:]), self.array.dtype)
            rows[order] = self.array[index[order]]
            return torch.from_numpy(rows)
        return torch.from_numpy(np.array(self.array[index]))

    def to(self, device: torch.device | str) -> DeviceRows:
        return DeviceRows(self, torch.device(device))

    def __repr__(self) -> str:
        return f"StreamedArray(shape={tuple(self.shape)}, dtype={self.dtype}, file={self.array.filename})"


class DeviceRows:
    """A :class:`StreamedArray` bound to a device: each indexed batch is read from disk and moved there."""

    def __init__(self, rows: StreamedArray, device: torch.device) -> None:
        self.rows, self.device = rows, device

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return self.rows.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.rows.dtype

    def __getitem__(self, index: Any) -> torch.Tensor:
        return self.rows[index].to(self.device)

    def to(self, device: torch.device | str) -> DeviceRows:
        return DeviceRows(self.rows, torch.device(device))


def stream_key(cfg: Any, source: str) -> str:
    """Names a source's decoded files: its files' content and every data field but ``stream``."""
    fields = cfg.model_dump(mode="json", exclude={"stream"})
    digests = [content_digest(p) for p in (cfg.path, cfg.shifted_path) if p]
    payload = json.dumps({"source": source, "data": fields, "content": digests}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def decode_all(count: int, shape: tuple[int, ...], dtype: np.dtype, decode: Callable[[int, int], np.ndarray],
               file: Path | None) -> np.ndarray:
    """Rows ``0..count`` decoded in chunks by a pool of threads, into memory or (``file``) a memory-mapped .npy
    that is written once: a later load of the same data and config opens it again."""
    if file is not None and file.is_file():
        return np.load(file, mmap_mode="r")
    if file is None:
        out = np.empty((count, *shape), dtype)
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_name(f".{file.stem}.{os.getpid()}.npy")
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=(count, *shape))

    def work(start: int) -> None:
        out[start:start + CHUNK] = decode(start, min(start + CHUNK, count))

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(work, range(0, count, CHUNK)))
    if file is None:
        return out
    out.flush()
    os.replace(partial, file)  # complete files only: a crash leaves a hidden partial one
    return np.load(file, mmap_mode="r")


def as_tensor(array: np.ndarray) -> torch.Tensor | StreamedArray:
    return StreamedArray(array) if isinstance(array, np.memmap) else torch.from_numpy(array)


# --- corruption and augmentation ------------------------------------------------------------------------------
def corrupt(x: torch.Tensor, shift: str, seed: int, vocab: int = 0, pad: int = -1) -> torch.Tensor:
    """The shifted version of test inputs (images in [0, 1], standardised features, or token ids)."""
    g = torch.Generator().manual_seed(seed)
    if shift == "token_dropout":
        hit = (torch.rand(x.shape, generator=g) < TOKEN_DROPOUT) & (x != pad)
        others = torch.randint(0, vocab - 1, x.shape, generator=g)
        others = others + (others >= pad).long() * (pad >= 0)  # any id but the pad
        return torch.where(hit, others, x)
    if shift == "blur":
        radius = 2
        taps = torch.exp(-torch.arange(-radius, radius + 1.0) ** 2 / (2 * BLUR_SIGMA ** 2))
        kernel = (taps[:, None] * taps[None, :] / taps.sum() ** 2).expand(x.shape[1], 1, -1, -1)
        padded = F.pad(x, (radius,) * 4, mode="replicate")
        return F.conv2d(padded, kernel.contiguous(), groups=x.shape[1])
    if shift == "brightness":
        return (x + BRIGHTNESS).clamp(0, 1)
    noisy = x + NOISE_STD["image" if x.dim() == 4 else "tabular"] * torch.randn(x.shape, generator=g)
    return noisy.clamp(0, 1) if x.dim() == 4 else noisy


def augmenter(kinds: Sequence[str]) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The per-batch augmentation of training images (B, C, H, W): random crop after 4-pixel zero padding and
    horizontal flip, drawn from torch's global RNG (which the study seeds)."""
    if not kinds:
        return None
    crop, flip = "crop" in kinds, "flip" in kinds

    def augment(x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if crop:
            padded = F.pad(x, (PAD,) * 4)  # (B, C, H + 8, W + 8)
            dy, dx = (torch.randint(0, 2 * PAD + 1, (b, 1), device=x.device) for _ in range(2))
            rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
            cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
            batch = torch.arange(b, device=x.device)[:, None, None, None]
            x = padded[batch, torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
        if flip:
            x = torch.where((torch.rand(b, device=x.device) < 0.5)[:, None, None, None], x.flip(-1), x)
        return x

    return augment


# --- assembling the splits ------------------------------------------------------------------------------------
def assemble(source: str, cfg: Any, modality: str, inputs: Inputs, rows: tuple[np.ndarray, ...],
             shifted: Inputs | None, num_classes: int, vocab: int = 0, pad: int = -1) -> DatasetSplits:
    """Decode the samples in split order (train, val, test; then the shifted test split) and hand them over as
    tensors, or as :class:`StreamedArray` s when data.stream says so or, left empty, when they exceed 1 GiB."""
    stream = cfg.stream if cfg.stream is not None else inputs.nbytes + (shifted.nbytes if shifted else 0) > STREAM_BYTES
    key = stream_key(cfg, source) if stream else None
    order = np.concatenate(rows)

    def file(part: str) -> Path | None:
        return cache_dir() / "streams" / f"{source}-{key}-{part}.npy" if key else None

    x = decode_all(len(order), inputs.shape, inputs.dtype, lambda a, b: inputs.decode(order[a:b]), file("inputs"))
    ends = np.cumsum([0, *map(len, rows)])
    train, val, test = (Split(as_tensor(x[a:b]), torch.as_tensor(inputs.targets[r]))  # type: ignore[arg-type]
                        for a, b, r in zip(ends[:-1], ends[1:], rows, strict=True))
    name = shift_name(cfg, modality)
    if shifted is not None:
        xs = decode_all(shifted.count, shifted.shape, shifted.dtype, lambda a, b: shifted.decode(np.arange(a, b)),
                        file("shifted"))
        test_shifted = Split(as_tensor(xs), torch.as_tensor(shifted.targets))  # type: ignore[arg-type]
    else:
        first = int(ends[2])

        def corrupted(a: int, b: int) -> np.ndarray:
            chunk = torch.from_numpy(np.array(x[first + a:first + b]))
            return corrupt(chunk, name, cfg.split_seed * 1_000_003 + a + 1, vocab, pad).numpy()

        xs = decode_all(len(rows[2]), inputs.shape, inputs.dtype, corrupted, file(f"shift-{name}"))
        test_shifted = Split(as_tensor(xs), test.y)  # type: ignore[arg-type]
    return DatasetSplits(source, train, val, test, test_shifted, num_classes=num_classes,
                         input_shape=tuple(inputs.shape), shift=shift_label(cfg, modality),
                         augment=augmenter(cfg.augment) if modality == "image" else None,
                         exact_match=False)  # running text is scored per token; classes are unaffected
