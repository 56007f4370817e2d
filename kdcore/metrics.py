"""Pure metric functions over predictions and models; logging happens elsewhere."""

from __future__ import annotations

import math
import statistics
import time
from itertools import pairwise

import torch
from torch import nn

from kdcore import targets

ECE_BINS = 15


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return (probs.argmax(-1) == labels).float().mean().item()


def mean_entropy(probs: torch.Tensor) -> float:
    """Mean predictive entropy in nats; ln K is the maximum (a uniform guess)."""
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean().item()


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE (Guo et al. 2017): bin by confidence, average |accuracy - confidence| weighted by bin size."""
    confidence, predicted = probs.max(-1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = torch.zeros(())
    for lo, hi in pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.float().mean() * (correct[in_bin].mean() - confidence[in_bin].mean()).abs()
    return ece.item()


def agreement(probs: torch.Tensor, reference_probs: torch.Tensor) -> float:
    """Share of samples on which two models make the same top-1 decision."""
    return (probs.argmax(-1) == reference_probs.argmax(-1)).float().mean().item()


def per_class_accuracy(probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    """Accuracy within each true class (NaN for a class absent from the split); per token for sequences."""
    labels = targets.scored_labels(labels)
    predicted = probs.argmax(-1)
    out = []
    for k in range(num_classes):
        mask = labels == k
        out.append((predicted[mask] == k).float().mean().item() if mask.any() else math.nan)
    return out


def exact_match(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of sequences whose every scored position is right; ``probs`` holds the (M, V) scored rows."""
    wrong = (probs.argmax(-1) != targets.scored_labels(labels)).float()
    per_sample = torch.zeros(len(labels)).index_add_(0, targets.positions(labels), wrong)
    return (per_sample == 0).float().mean().item()


def prediction_metrics(
    probs: torch.Tensor, labels: torch.Tensor, teacher_probs: torch.Tensor | None, prefix: str,
    exact: bool = True,
) -> dict[str, float]:
    """The per-split metrics of the schema: ``<prefix>/acc``, ``/entropy``, ``/ece``, ``/agreement``.

    For sequences ``probs`` holds the scored positions and ``labels`` the (N, T) targets: ``acc`` is the
    exact match per sequence (``exact``, else the token accuracy), ``token_acc`` and ``perplexity`` are per
    scored position, the rest per position.
    """
    rows = targets.scored_labels(labels)
    out = {
        f"{prefix}/acc": accuracy(probs, rows),
        f"{prefix}/entropy": mean_entropy(probs),
        f"{prefix}/ece": expected_calibration_error(probs, rows),
    }
    if targets.is_sequence(labels):
        out[f"{prefix}/token_acc"] = out[f"{prefix}/acc"]
        if exact:
            out[f"{prefix}/acc"] = exact_match(probs, labels)
        nll = -probs.gather(1, rows[:, None]).clamp_min(1e-12).log().mean().item()
        out[f"{prefix}/perplexity"] = math.exp(nll)
    if teacher_probs is not None:
        out[f"{prefix}/agreement"] = agreement(probs, teacher_probs)
    return out


@torch.inference_mode()
def latency_ms(model: nn.Module, example: torch.Tensor, batch_size: int, repeats: int = 15) -> float:
    """Median wall time of one forward pass, in milliseconds per sample, after a warm-up."""
    model.eval()
    x = example[:1].expand(batch_size, *example.shape[1:]).contiguous()
    device = x.device
    timings = []
    for i in range(repeats + 3):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 3:
            timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000 / batch_size


@torch.inference_mode()
def peak_memory_mb(model: nn.Module, example: torch.Tensor, batch_size: int = 256) -> float:
    """Peak memory of inference on a batch, in MiB.

    On CUDA this is the allocator's peak. On CPU torch keeps no such counter, so it is the
    parameters and buffers plus the largest input+output pair of any layer, which is what an
    inference runtime must hold at once.
    """
    model.eval()
    x = example[:1].expand(batch_size, *example.shape[1:]).contiguous()
    if x.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
        model(x)
        return (torch.cuda.max_memory_allocated(x.device) - base + _weight_bytes(model)) / 2**20
    largest = 0

    def hook(_module: nn.Module, inputs: tuple, output: object) -> None:
        nonlocal largest
        size = sum(t.numel() * t.element_size() for t in inputs if torch.is_tensor(t))
        size += sum(t.numel() * t.element_size() for t in _tensors(output))
        largest = max(largest, size)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return (_weight_bytes(model) + largest) / 2**20


def _weight_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def _tensors(obj: object) -> list[torch.Tensor]:
    if torch.is_tensor(obj):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    return []
