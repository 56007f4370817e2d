"""What a study stores per role beside its metrics: weights, predictions and attention maps, and where
they are read back from."""

from __future__ import annotations

import io
import logging
import zipfile

import numpy as np
import torch
from torch import nn

from kdcore.data.splits import DatasetSplits
from kdcore.targets import scored_labels
from kdcore.tracker import RunRecord, Tracker

WEIGHTS = "model/state_dict.pt"
PREDICTIONS = "predictions.npz"
ATTENTIONS = "attentions.npz"  # a transformer role's attention maps on the first test inputs
ATTENTION_EXAMPLES = 8
PREDICTION_VALUES = 20_000_000  # probabilities kept per split (80 MB as float32)

log = logging.getLogger(__name__)


def weights_run(run: RunRecord) -> str:
    """The run that holds a role's weights: itself, or the run a reused teacher came from."""
    return run.tags.get("kd.reused_from", run.run_id)


@torch.inference_mode()
def attentions_npz(model: nn.Module, x: torch.Tensor) -> bytes | None:
    """The attention maps of a model that returns them, on a few test inputs: ``maps`` (layers, N, heads, T, T)
    as float16 and the ``inputs``; None for a model without attention."""
    was = model.training
    out = model.eval()(x)
    model.train(was)
    if not out.attentions:
        return None
    buffer = io.BytesIO()
    maps = torch.stack([a.float().cpu() for a in out.attentions]).numpy().astype(np.float16)
    np.savez_compressed(buffer, maps=maps, inputs=x.cpu().numpy())
    return buffer.getvalue()


def predictions_npz(probs: dict[str, torch.Tensor], splits: DatasetSplits) -> bytes:
    """A role's probabilities and labels on the validation, test and shifted test splits, compressed. A split
    whose table would exceed ``PREDICTION_VALUES`` (a language model's vocabulary at every position) keeps its
    first rows only, so the gates read a sample of it rather than gigabytes."""
    buffer = io.BytesIO()
    arrays = {}
    for split, key in (("val", "val"), ("test", "test"), ("test_shifted", "shift")):
        table, labels = probs[split], scored_labels(getattr(splits, split).y)
        rows = max(1, PREDICTION_VALUES // max(1, table.shape[1]))
        arrays[f"{key}_probs"] = table[:rows].numpy().astype(np.float32)
        arrays[f"{key}_labels"] = labels[:rows].numpy()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def read_predictions(tracker: Tracker, run_id: str) -> dict[str, np.ndarray] | None:
    """A role's logged predictions; None (its gates become "not measurable") when it has none or they are damaged."""
    try:
        data = tracker.read_bytes(run_id, PREDICTIONS)
    except FileNotFoundError:
        return None
    return parse_predictions(data, run_id)


def parse_predictions(data: bytes, run_id: str) -> dict[str, np.ndarray] | None:
    """The arrays of a ``predictions.npz``; None (logged as a warning) when they are damaged."""
    try:
        with np.load(io.BytesIO(data)) as arrays:
            predictions = {key: arrays[key] for key in arrays.files}
        if predictions["test_probs"].ndim != 2:
            raise ValueError(f"test_probs has shape {predictions['test_probs'].shape}, expected (N, classes)")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("run %s: predictions.npz is unreadable (%s); its gates are not measurable", run_id, err)
        return None
    return predictions
