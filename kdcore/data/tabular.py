"""Your tables: a CSV or Parquet file with a label column (``data.target``, default ``label``).

The inputs are ``data.columns`` (default: every other column). Numeric inputs are standardised with the
training split's mean and std; a single text column instead makes a text classification task, its text
tokenised to ``data.max_length`` ids (padded with the tokenizer's pad id). Labels may be numbers or strings:
they become 0..K-1 in sorted order, their names kept as the classes. A ``split`` column of train, val
(or validation) and test is your split; without one the split is stratified and seeded. The same survey
serves the columns of a saved Hugging Face dataset (hf_disk).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdcore.data.sources import (
    Inputs,
    assemble,
    check_fields,
    enough,
    label_codes,
    shift_name,
    source_fields,
    split_rows,
    user_split,
)
from kdcore.data.splits import DatasetSplits
from kdcore.data.tokenize import Tokenizer, tokenizer_for
from kdcore.registry import register_dataset

SPLIT_COLUMN = "split"


def read_table(path: str, source: str, field: str) -> pd.DataFrame:
    """The whole file as a DataFrame; a file pandas cannot read is a one-line error."""
    try:
        return pd.read_csv(path) if source == "csv" else pd.read_parquet(path)
    except (OSError, ValueError) as err:  # parser, encoding and Arrow errors are ValueErrors
        detail = " ".join(str(err).split())[:160]
        raise ValueError(f"{field}: cannot read {Path(path).name} as {source} ({detail})") from None


def is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


@dataclass(frozen=True)
class Table:
    """The samples of a table: the input columns, the task they make, labels and the user's split."""

    modality: str  # "tabular" (numbers) or "text" (one text column)
    inputs: list[str]
    frame: pd.DataFrame
    targets: np.ndarray
    classes: list[str]
    split: np.ndarray | None
    shifted: pd.DataFrame | None
    shifted_targets: np.ndarray | None
    tokenizer: Tokenizer | None

    def meta(self, cfg: Any) -> dict[str, Any]:
        """What describe() returns for this table."""
        meta = {"num_classes": len(self.classes), "modality": self.modality, "targets": "classes",
                "classes": self.classes, "columns": self.inputs}
        if self.tokenizer is None:
            return meta | {"input_shape": (len(self.inputs),), "inputs": "tensor"}
        return meta | {"input_shape": (cfg.max_length,), "inputs": "tokens",
                       "vocab_size": self.tokenizer.vocab_size, "pad_id": self.tokenizer.pad_id}


def survey_frame(source: str, cfg: Any, frame: pd.DataFrame, where: str, split: np.ndarray | None = None,
                 shifted: pd.DataFrame | None = None, shifted_where: str = "") -> Table:
    """Check a table against the data config and find its task; ``split`` is a split the caller already knows
    (a DatasetDict's), else the table's own split column, if any."""
    target = cfg.target or "label"
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise ValueError(f"data.target: no column {target!r} in {where}; columns: {', '.join(columns)}")
    missing = [c for c in cfg.columns if c not in columns]
    if missing:
        raise ValueError(f"data.columns: no column {missing[0]!r} in {where}; columns: {', '.join(columns)}")
    if target in cfg.columns:
        raise ValueError(f"data.columns: {target!r} is the label column (data.target); list input columns only")
    own_split = split is None and SPLIT_COLUMN in columns and SPLIT_COLUMN not in cfg.columns and target != "split"
    inputs = list(cfg.columns) or [c for c in columns if c != target and not (own_split and c == SPLIT_COLUMN)]
    if not inputs:
        raise ValueError(f"data.columns: {where} has no input column besides the label column {target!r}")
    text = [c for c in inputs if not is_numeric(frame[c])]
    if text and len(inputs) > 1:
        raise ValueError(f"data.columns: {where} has text column(s) {', '.join(text)} beside others; choose "
                         "numeric columns, or one text column for text classification")
    modality = "text" if text else "tabular"
    check_fields(cfg, source, modality, where, own=("target", "columns"))
    shift_name(cfg, modality)
    enough(len(frame), where)
    if own_split:
        split = user_split(frame[SPLIT_COLUMN].tolist(), where)
    targets, classes = label_codes(frame[target].tolist(), "data.target", where)
    if modality == "tabular":
        _complete(frame, inputs, where, "data.columns")
    shifted_targets = None
    if shifted is not None:
        enough(len(shifted), shifted_where, "data.shifted_path")
        have = [str(c) for c in shifted.columns]
        absent = [c for c in (target, *inputs) if c not in have]
        if absent:
            raise ValueError(f"data.shifted_path: no column {absent[0]!r} in {shifted_where}; it needs the columns "
                             f"of data.path ({', '.join([*inputs, target])})")
        if modality == "tabular":
            wrong = [c for c in inputs if not is_numeric(shifted[c])]
            if wrong:
                raise ValueError(f"data.shifted_path: column {wrong[0]!r} of {shifted_where} is not numeric, as it "
                                 f"is in {where}")
            _complete(shifted, inputs, shifted_where, "data.shifted_path")
        shifted_targets, _ = label_codes(shifted[target].tolist(), "data.shifted_path", shifted_where, classes)
    tokenizer = tokenizer_for(cfg, lambda: texts(frame, inputs[0])) if modality == "text" else None
    return Table(modality, inputs, frame[inputs], targets, classes, split,
                 None if shifted is None else shifted[inputs], shifted_targets, tokenizer)


def _complete(frame: pd.DataFrame, inputs: list[str], where: str, field: str) -> None:
    empty = frame[inputs].isna().sum()
    if empty.any():
        column = str(empty[empty > 0].index[0])
        raise ValueError(f"{field}: column {column!r} of {where} has {int(empty[column])} empty value(s); fill or "
                         "drop those rows")


def texts(frame: pd.DataFrame, column: str) -> list[str]:
    """A text column as strings (an empty cell is an empty text)."""
    return frame[column].fillna("").astype(str).tolist()


def table_splits(source: str, cfg: Any, table: Table) -> DatasetSplits:
    """Standardised numbers, or token ids of the text column, split and shifted."""
    rows = split_rows(table.targets, len(table.targets), table.split, cfg)
    if table.tokenizer is None:
        values = table.frame.to_numpy(np.float64)
        mean, std = values[rows[0]].mean(0), values[rows[0]].std(0)
        std[std == 0] = 1.0  # a constant column stays constant (zero)

        def numbers(frame: pd.DataFrame, targets: np.ndarray) -> Inputs:
            array = frame.to_numpy(np.float64)
            return Inputs(len(array), (array.shape[1],), np.dtype(np.float32),
                          lambda r: ((array[r] - mean) / std).astype(np.float32), targets)

        shifted = None if table.shifted is None else numbers(table.shifted, table.shifted_targets)
        return assemble(source, cfg, "tabular", numbers(table.frame, table.targets), rows, shifted,
                        num_classes=len(table.classes))
    tok, length = table.tokenizer, cfg.max_length

    def tokens(frame: pd.DataFrame, targets: np.ndarray) -> Inputs:
        column = texts(frame, table.inputs[0])
        return Inputs(len(column), (length,), np.dtype(np.int64),
                      lambda r: tok.rows([column[i] for i in r], length), targets)

    shifted = None if table.shifted is None else tokens(table.shifted, table.shifted_targets)
    return assemble(source, cfg, "text", tokens(table.frame, table.targets), rows, shifted,
                    num_classes=len(table.classes), vocab=tok.vocab_size, pad=tok.pad_id)


def survey(source: str, cfg: Any) -> Table:
    frame = read_table(cfg.path, source, "data.path")
    shifted = read_table(cfg.shifted_path, source, "data.shifted_path") if cfg.shifted_path else None
    return survey_frame(source, cfg, frame, Path(cfg.path).name, shifted=shifted,
                        shifted_where=Path(cfg.shifted_path or "").name)


def describe_csv(cfg: Any) -> dict[str, Any]:
    """Inputs and classes of a CSV file (data.path)."""
    return survey("csv", cfg).meta(cfg)


def describe_parquet(cfg: Any) -> dict[str, Any]:
    """Inputs and classes of a Parquet file (data.path)."""
    return survey("parquet", cfg).meta(cfg)


@register_dataset("csv", source=True, describe=describe_csv, modality="tabular", generated=False,
                  fields=source_fields("target", "columns", "max_length"))
def csv(cfg: Any) -> DatasetSplits:
    """Your CSV table: numeric columns (standardised) or one text column, and a label column."""
    return table_splits("csv", cfg, survey("csv", cfg))


@register_dataset("parquet", source=True, describe=describe_parquet, modality="tabular", generated=False,
                  fields=source_fields("target", "columns", "max_length"))
def parquet(cfg: Any) -> DatasetSplits:
    """Your Parquet table: numeric columns (standardised) or one text column, and a label column."""
    return table_splits("parquet", cfg, survey("parquet", cfg))
