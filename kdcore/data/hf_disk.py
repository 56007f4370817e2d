"""Your Hugging Face dataset, saved with ``save_to_disk``: an image column, a text column or numeric columns, and
a label column (``data.target``, default ``label``).

A DatasetDict with train and test splits (and optionally validation) is your split; val, when absent, is carved
from train. A single Dataset, or a DatasetDict without a test split, is split stratified and seeded. Images go
the imagefolder way, text and numbers the csv way (a ClassLabel keeps its class names).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdcore.data.imagefolder import ImageSource, image_inputs, image_layout
from kdcore.data.sources import (
    SPLIT_NAMES,
    assemble,
    check_fields,
    enough,
    label_codes,
    shift_name,
    source_fields,
    split_rows,
)
from kdcore.data.splits import DatasetSplits
from kdcore.data.tabular import Table, survey_frame, table_splits
from kdcore.registry import register_dataset


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ValueError("data.path: hf_disk needs the datasets package (pip install 'kd-explorer[hf]')") from None
    return datasets


def load(path: str, field: str) -> tuple[Any, np.ndarray | None]:
    """Every sample of a saved Dataset or DatasetDict as one Dataset, and the split of each (None: ours to make)."""
    datasets = _datasets()
    name = Path(path).expanduser().name
    try:
        data = datasets.load_from_disk(str(Path(path).expanduser()))
    except (OSError, ValueError) as err:  # FileNotFoundError for a folder that is no saved dataset
        detail = " ".join(str(err).split())[:160]
        raise ValueError(f"{field}: {name} is not a dataset saved with save_to_disk ({detail})") from None
    if not isinstance(data, datasets.DatasetDict):
        return data, None
    named = {SPLIT_NAMES[key.lower()]: data[key] for key in data if key.lower() in SPLIT_NAMES}
    if field == "data.path" and "train" not in named:
        raise ValueError(f"data.path: {name} has the splits {', '.join(data)}; give a train split (and test, "
                         "optionally validation) or a single Dataset")
    parts = named if named else dict(data)
    whole = datasets.concatenate_datasets(list(parts.values()))
    if field != "data.path" or "test" not in named:  # a shifted file, or no test split: all of it, ours to split
        return whole, None
    return whole, np.repeat(np.array(list(parts), dtype=object), [len(d) for d in parts.values()])


class ImageColumn:
    """The encoded images of a column, each read from the dataset when asked for (no decoding here)."""

    def __init__(self, data: Any, column: str) -> None:
        self.data = data.cast_column(column, _datasets().Image(decode=False))
        self.column = column

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> ImageSource:
        cell = self.data[int(i)][self.column]
        return cell["bytes"] if cell.get("bytes") else Path(cell["path"])


@dataclass(frozen=True)
class Images:
    column: ImageColumn
    targets: np.ndarray
    classes: list[str]
    split: np.ndarray | None
    shape: tuple[int, int, int]
    mode: str
    shifted: ImageColumn | None
    shifted_targets: np.ndarray | None


def _labels(data: Any, target: str, field: str, where: str, classes: list[str] | None = None
            ) -> tuple[np.ndarray, list[str]]:
    """Label codes of a column; a ClassLabel keeps its own names and order."""
    feature = data.features[target]
    values = data[target]
    if isinstance(feature, _datasets().ClassLabel):
        classes = classes or list(feature.names)
        values = [feature.names[v] if v is not None and v >= 0 else None for v in values]
    return label_codes(values, field, where, classes)


def survey(cfg: Any) -> Images | Table:
    """The dataset's task, checked against the data config, from its features and label column (no pixels)."""
    where = Path(cfg.path).expanduser().name
    data, split = load(cfg.path, "data.path")
    shifted, shifted_where = None, Path(cfg.shifted_path or "").name
    if cfg.shifted_path:
        shifted, _ = load(cfg.shifted_path, "data.shifted_path")
        enough(len(shifted), shifted_where, "data.shifted_path")
    target = cfg.target or "label"
    columns = list(data.column_names)
    if target not in columns:
        raise ValueError(f"data.target: no column {target!r} in {where}; columns: {', '.join(columns)}")
    inputs = list(cfg.columns) or [c for c in columns if c != target]
    unknown = [c for c in inputs if c not in columns]
    if unknown:
        raise ValueError(f"data.columns: no column {unknown[0]!r} in {where}; columns: {', '.join(columns)}")
    kinds = {c: _kind(data.features[c]) for c in inputs}
    odd = [c for c, kind in kinds.items() if kind is None]
    if odd:
        raise ValueError(f"data.columns: column {odd[0]!r} of {where} holds {type(data.features[odd[0]]).__name__}; "
                         "allowed: one image column, one text column, or numeric columns")
    if "image" in kinds.values():
        if len(inputs) > 1:
            raise ValueError(f"data.columns: {where} has an image column beside others ({', '.join(inputs)}); "
                             "choose the image column alone")
        return _images(cfg, data, split, inputs[0], target, where, shifted, shifted_where)
    if shifted is not None:
        missing = [c for c in (*inputs, target) if c not in shifted.column_names]
        if missing:
            raise ValueError(f"data.shifted_path: no column {missing[0]!r} in {shifted_where}; it needs the "
                             f"columns of data.path ({', '.join([*inputs, target])})")
    names = _class_names(data, target)
    frame = data.select_columns([*inputs, target]).to_pandas()
    other = shifted.select_columns([*inputs, target]).to_pandas() if shifted is not None else None
    table = survey_frame("hf_disk", cfg, frame, where, split, other, shifted_where)
    if names:  # the ClassLabel's names, in its order (its ids sort as they do)
        table = dataclasses.replace(table, classes=[names[int(c)] for c in table.classes])
    return table


def _kind(feature: Any) -> str | None:
    """image, text or number for the features an input column may have; None for any other."""
    datasets = _datasets()
    if isinstance(feature, datasets.Image):
        return "image"
    if isinstance(feature, datasets.ClassLabel):
        return "number"
    if isinstance(feature, datasets.Value):
        return "text" if feature.dtype in ("string", "large_string") else "number"
    return None


def _class_names(data: Any, target: str) -> list[str] | None:
    feature = data.features[target]
    return list(feature.names) if isinstance(feature, _datasets().ClassLabel) else None


def _images(cfg: Any, data: Any, split: np.ndarray | None, column: str, target: str, where: str,
            shifted: Any, shifted_where: str) -> Images:
    check_fields(cfg, "hf_disk", "image", where, own=("target", "columns"))
    shift_name(cfg, "image")
    enough(len(data), where)
    targets, classes = _labels(data, target, "data.target", where)
    images = ImageColumn(data, column)
    shape, mode = image_layout(images, [f"{column}[{i}]" for i in range(len(images))], cfg, "data.path")
    shifted_images, shifted_targets = None, None
    if shifted is not None:
        if column not in shifted.column_names or target not in shifted.column_names:
            raise ValueError(f"data.shifted_path: {shifted_where} needs the columns {column!r} and {target!r}")
        shifted_targets, _ = _labels(shifted, target, "data.shifted_path", shifted_where, classes)
        shifted_images = ImageColumn(shifted, column)
        image_layout(shifted_images, [f"{column}[{i}]" for i in range(len(shifted_images))], cfg,
                     "data.shifted_path", expected=shape)
    return Images(images, targets, classes, split, shape, mode, shifted_images, shifted_targets)


def describe(cfg: Any) -> dict[str, Any]:
    """Inputs and classes of a saved Hugging Face dataset (data.path), from its features and labels."""
    found = survey(cfg)
    if isinstance(found, Table):
        return found.meta(cfg)
    return {"input_shape": found.shape, "num_classes": len(found.classes), "modality": "image",
            "inputs": "tensor", "targets": "classes", "classes": found.classes}


@register_dataset("hf_disk", source=True, describe=describe, generated=False,
                  fields=source_fields("target", "columns", "image_size", "augment", "max_length"))
def hf_disk(cfg: Any) -> DatasetSplits:
    """Your Hugging Face dataset saved with save_to_disk: an image, a text or numeric columns, and labels."""
    found = survey(cfg)
    if isinstance(found, Table):
        return table_splits("hf_disk", cfg, found)
    rows = split_rows(found.targets, len(found.targets), found.split, cfg)
    inputs = image_inputs(found.column, found.targets, found.shape, found.mode, cfg.image_size)
    shifted = None
    if found.shifted is not None:
        shifted = image_inputs(found.shifted, found.shifted_targets, found.shape, found.mode, cfg.image_size)
    return assemble("hf_disk", cfg, "image", inputs, rows, shifted, num_classes=len(found.classes))
