"""A trained role judged on every split: its predictions, the metrics of the schema, and what deploying it costs.

The numbers are those a study logs on each role's run at the end of its training (``test/acc``,
``shift/ece``, ``val/acc_class_k``, ``model/latency_ms``, ...); see DESIGN.md for the schema.
"""

from __future__ import annotations

import torch
from torch import nn

from kdcore.data.splits import DatasetSplits
from kdcore.engine import predict_probs
from kdcore.metrics import latency_ms, peak_memory_mb, per_class_accuracy, prediction_metrics
from kdcore.models.base import count_parameters
from kdcore.models.ensemble import Ensemble

METRIC_PREFIX = {"val": "val", "test": "test", "test_shifted": "shift"}  # split -> metric key prefix
CLASS_METRICS = 200  # per-class accuracies are logged up to this many classes


def predictions(model: nn.Module, splits: DatasetSplits, device: torch.device, amp: bool) -> dict[str, torch.Tensor]:
    """Softmax probabilities of ``model`` on the validation, test and shifted test splits (scored rows)."""
    model.to(device).eval()
    return {name: predict_probs(model, getattr(splits, name), device, amp) for name in METRIC_PREFIX}


def cost_metrics(model: nn.Module, example: torch.Tensor) -> dict[str, float]:
    """What deploying ``model`` costs on inputs like ``example`` (one sample, on its device): parameters,
    latency at batch 1 and 256, peak memory."""
    return {
        "model/params": float(count_parameters(model)),
        "model/latency_ms": latency_ms(model, example, batch_size=1),
        "model/latency_ms_b256": latency_ms(model, example, batch_size=256, repeats=5),
        "model/memory_mb": peak_memory_mb(model, example),
    }


def split_metrics(probs: dict[str, torch.Tensor], splits: DatasetSplits,
                  reference: dict[str, torch.Tensor]) -> dict[str, float]:
    """Accuracy, entropy, calibration and agreement with ``reference`` (the teacher's probabilities) on each
    split, ``val/best_acc`` for the selected model, and per-class accuracies up to ``CLASS_METRICS`` classes."""
    metrics: dict[str, float] = {}
    for split, prefix in METRIC_PREFIX.items():
        metrics |= prediction_metrics(probs[split], getattr(splits, split).y, reference.get(split), prefix,
                                      splits.exact_match)
    metrics["val/best_acc"] = metrics.pop("val/acc")  # val/acc is the per-epoch curve
    if splits.num_classes <= CLASS_METRICS:  # a tokenizer's vocabulary: one metric per token is no report
        for split in ("val", "test"):  # val feeds the judgement (gate 10); test is for the report
            for k, acc in enumerate(per_class_accuracy(probs[split], getattr(splits, split).y, splits.num_classes)):
                metrics[f"{split}/acc_class_{k}"] = acc
    return metrics


def member_metrics(ensemble: Ensemble, splits: DatasetSplits, device: torch.device, amp: bool) -> dict[str, float]:
    """Each member's own accuracy (``member_<i>/val_acc``, ``member_<i>/test_acc``), beside the ensemble's."""
    out: dict[str, float] = {}
    for i, member in enumerate(ensemble.members, start=1):
        probs = predictions(member, splits, device, amp)
        for split in ("val", "test"):
            y = getattr(splits, split).y
            out[f"member_{i}/{split}_acc"] = prediction_metrics(probs[split], y, None, split)[f"{split}/acc"]
    return out
