"""Your images: a folder of class subfolders (``cat/001.png``, ``dog/002.jpg``, ...), optionally split by you.

Images are read with PIL as RGB, or as grayscale (L) when every one is, scaled to [0, 1] and laid out
(C, H, W). With ``data.image_size`` each is resized to that square side; without it they must all have one
size. When the folder holds ``train/``, ``test/`` and optionally ``val/`` (or ``validation/``), each with class
subfolders, those are the splits (val, when absent, is carved from train); otherwise the split is stratified
and seeded. With ``data.paired_path``, a second folder holds the same files (the same relative names) as
another sensor sees them: each sample is both images stacked on the channels, and the two folders are its
views (named after them) for cross-modal distillation. The image helpers here also read images of a saved
Hugging Face dataset (hf_disk).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from kdcore.data.sources import (
    SPLIT_NAMES,
    WORKERS,
    Inputs,
    assemble,
    check_fields,
    enough,
    label_codes,
    shift_name,
    source_fields,
    split_rows,
)
from kdcore.data.splits import DatasetSplits
from kdcore.registry import register_dataset

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
GRAY = {"1", "L", "LA"}  # PIL modes read as one channel

ImageSource = Path | bytes  # a file, or the encoded bytes of one (a Hugging Face dataset's image column)


def _open(source: ImageSource) -> Image.Image:
    return Image.open(source if isinstance(source, Path) else io.BytesIO(source))


def _header(source: ImageSource) -> tuple[tuple[int, int], str] | str:
    """(width, height) and mode from the file's header, or why it cannot be read."""
    try:
        with _open(source) as image:
            return image.size, image.mode
    except (UnidentifiedImageError, OSError) as err:
        return " ".join(str(err).split())[:120]


def image_layout(sources: Sequence[ImageSource], names: Sequence[str], cfg: Any, field: str,
                 expected: tuple[int, ...] | None = None) -> tuple[tuple[int, int, int], str]:
    """(C, H, W) and PIL mode of images, from their headers alone; an unreadable image, or (without
    data.image_size) one of another size, is a one-line error naming it."""
    with ThreadPoolExecutor(WORKERS) as pool:
        headers = list(pool.map(_header, sources))
    first = None
    for name, found in zip(names, headers, strict=True):
        if isinstance(found, str):
            raise ValueError(f"{field}: cannot read image {name} ({found})")
        (width, height), _ = found
        first = first or (name, width, height)
        if cfg.image_size is None and (width, height) != first[1:]:
            raise ValueError(f"data.image_size: image {name} is {width}x{height} but {first[0]} is "
                             f"{first[1]}x{first[2]}; set data.image_size to resize every image to one square side")
    assert first is not None
    mode = "L" if all(found[1] in GRAY for found in headers) else "RGB"  # type: ignore[index]
    side = cfg.image_size
    shape = (1 if mode == "L" else 3, *((side, side) if side else (first[2], first[1])))
    if expected is not None and shape[1:] != expected[1:]:
        raise ValueError(f"data.image_size: image {first[0]} of {field.removeprefix('data.')} is {first[1]}x"
                         f"{first[2]} but the images of data.path are {expected[2]}x{expected[1]}; set "
                         "data.image_size to resize every image to one square side")
    return shape, mode  # type: ignore[return-value]


def read_image(source: ImageSource, mode: str, side: int | None) -> np.ndarray:
    """One image as float32 (C, H, W) in [0, 1]."""
    with _open(source) as image:
        image = image.convert(mode)
        if side:
            image = image.resize((side, side), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32) / 255
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def image_inputs(sources: Sequence[ImageSource], targets: np.ndarray, shape: tuple[int, ...], mode: str,
                 side: int | None) -> Inputs:
    """Images to decode, in ``shape`` (C, H, W) and ``mode``, with their class targets."""

    def decode(rows: np.ndarray) -> np.ndarray:
        return np.stack([read_image(sources[i], mode, side) for i in rows])

    return Inputs(len(sources), tuple(shape), np.dtype(np.float32), decode, targets)


def stacked(first: Inputs, second: Inputs) -> Inputs:
    """Two sensors' images of the same samples as one input, stacked on the channels (first, then second)."""

    def decode(rows: np.ndarray) -> np.ndarray:
        return np.concatenate([first.decode(rows), second.decode(rows)], axis=1)

    shape = (first.shape[0] + second.shape[0], *first.shape[1:])
    return Inputs(first.count, shape, first.dtype, decode, first.targets)


# --- the folder -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Folder:
    """The images of a folder: each file, its name relative to the folder, its class and the user's split."""

    files: list[Path]
    names: list[str]
    classes: list[str]  # the class (folder name) of each file
    split: np.ndarray | None


def class_folders(root: Path, where: str, field: str) -> list[tuple[Path, str]]:
    """(image, class name) of every image under ``root``'s class subfolders, in sorted order."""
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise ValueError(f"{field}: {where} holds no class folders; put each class's images in a subfolder "
                         "named after the class")
    found = []
    for folder in folders:
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        if not images:
            raise ValueError(f"{field}: class folder {folder.name} in {where} holds no images "
                             f"({', '.join(SUFFIXES)})")
        found += [(p, folder.name) for p in images]
    return found


def scan(path: str, field: str) -> Folder:
    """The images of ``path``, by the user's split folders when it has train/ and test/."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"{field}: imagefolder reads a folder of class subfolders; {root.name} is a file")
    parts = {SPLIT_NAMES[d.name.lower()]: d for d in sorted(root.iterdir())
             if d.is_dir() and d.name.lower() in SPLIT_NAMES}
    user = field == "data.path" and {"train", "test"} <= parts.keys()
    groups = parts if user else {"": root}
    files, classes, split = [], [], []
    for name, folder in groups.items():
        where = root.name if folder == root else f"{root.name}/{folder.name}"
        for file, label in class_folders(folder, where, field):
            files.append(file)
            classes.append(label)
            split.append(name)
    names = [f.relative_to(root).as_posix() for f in files]
    return Folder(files, names, classes, np.array(split, dtype=object) if user else None)


@dataclass(frozen=True)
class Survey:
    """What describe() and the loader both need: the images, their classes, shape and mode."""

    folder: Folder
    targets: np.ndarray
    classes: list[str]
    shape: tuple[int, int, int]
    mode: str
    shifted: Folder | None
    shifted_targets: np.ndarray | None
    paired: Folder | None = None  # the other sensor's images, in the order of ``folder``
    paired_shape: tuple[int, int, int] | None = None
    paired_mode: str = "RGB"

    def views(self, cfg: Any) -> dict[str, tuple[int, int]]:
        """Channel range of each folder's images in a sample (paired folders only), by folder name."""
        if self.paired is None or self.paired_shape is None:
            return {}
        first, second = Path(cfg.path).expanduser().name, Path(cfg.paired_path).expanduser().name
        if second == first:
            second = f"{second}_paired"
        return {first: (0, self.shape[0]), second: (self.shape[0], self.shape[0] + self.paired_shape[0])}


def survey(cfg: Any) -> Survey:
    """Read the folder(s) and the images' headers (no pixels)."""
    where = Path(cfg.path).expanduser().name
    check_fields(cfg, "imagefolder", "image", where, own=("paired_path",))
    shift_name(cfg, "image")
    folder = scan(cfg.path, "data.path")
    enough(len(folder.files), where)
    targets, classes = label_codes(folder.classes, "data.path", where)
    shape, mode = image_layout(folder.files, folder.names, cfg, "data.path")
    shifted, shifted_targets = None, None
    if cfg.shifted_path:
        if cfg.paired_path:
            raise ValueError("data.shifted_path: paired folders take their shifted split from data.shift (a "
                             "corruption of both views); leave shifted_path empty")
        shifted = scan(cfg.shifted_path, "data.shifted_path")
        shifted_targets, _ = label_codes(shifted.classes, "data.shifted_path", Path(cfg.shifted_path).name, classes)
        image_layout(shifted.files, shifted.names, cfg, "data.shifted_path", expected=shape)
    if not cfg.paired_path:
        return Survey(folder, targets, classes, shape, mode, shifted, shifted_targets)
    paired = pair(folder, scan(cfg.paired_path, "data.paired_path"), Path(cfg.paired_path).expanduser().name)
    paired_shape, paired_mode = image_layout(paired.files, paired.names, cfg, "data.paired_path", expected=shape)
    return Survey(folder, targets, classes, shape, mode, None, None, paired, paired_shape, paired_mode)


def pair(folder: Folder, other: Folder, where: str) -> Folder:
    """``other``'s images in the order of ``folder``'s, matched by relative name; an image of either without
    its partner is a one-line error."""
    index = dict(zip(other.names, range(len(other.names)), strict=True))
    missing = next((name for name in folder.names if name not in index), None)
    if missing is not None:
        raise ValueError(f"data.paired_path: {missing} has no partner in {where}; the paired folder holds the "
                         "same files under the same names")
    if len(index) != len(folder.names):
        extra = next(name for name in other.names if name not in set(folder.names))
        raise ValueError(f"data.paired_path: {where}/{extra} has no partner in data.path")
    order = [index[name] for name in folder.names]
    return Folder([other.files[i] for i in order], list(folder.names), folder.classes, folder.split)


def describe(cfg: Any) -> dict[str, Any]:
    """Shape and classes of the images in data.path (headers only)."""
    found = survey(cfg)
    views = found.views(cfg)
    shape = (sum(stop - start for start, stop in views.values()), *found.shape[1:]) if views else found.shape
    return {"input_shape": shape, "num_classes": len(found.classes), "modality": "image",
            "inputs": "tensor", "targets": "classes", "classes": found.classes, **({"views": views} if views else {})}


@register_dataset("imagefolder", source=True, describe=describe, modality="image", generated=False,
                  fields=source_fields("paired_path", "image_size", "augment"))
def imagefolder(cfg: Any) -> DatasetSplits:
    """Your images: a folder of class subfolders (or train/, val/, test/ of them), scaled to [0, 1]."""
    found = survey(cfg)
    rows = split_rows(found.targets, len(found.targets), found.folder.split, cfg)
    inputs = image_inputs(found.folder.files, found.targets, found.shape, found.mode, cfg.image_size)
    if found.paired is not None and found.paired_shape is not None:
        inputs = stacked(inputs, image_inputs(found.paired.files, found.targets, found.paired_shape,
                                              found.paired_mode, cfg.image_size))
    shifted = None
    if found.shifted is not None:
        shifted = image_inputs(found.shifted.files, found.shifted_targets, found.shape, found.mode, cfg.image_size)
    return assemble("imagefolder", cfg, "image", inputs, rows, shifted, num_classes=len(found.classes))
