"""The two kinds of targets, handled in one place: a class per sample, or a token per position.

Classification data gives logits (B, K) and labels (B,). Sequence data (e.g. next-token prediction) gives
logits (B, T, V) and labels (B, T) in which positions that are not scored hold :data:`IGNORE`. Losses,
response terms and metrics see the scored positions as rows, so every method and metric works on both;
a sample counts as correct only when all its scored positions are (exact match).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100  # label of a position that is neither trained nor scored


def is_sequence(labels: torch.Tensor) -> bool:
    return labels.dim() == 2


def scored(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows to score: (B, K) and (B,) unchanged; (B, T, V) and (B, T) -> the (M, V) and (M,) scored positions."""
    if not is_sequence(labels):
        return logits, labels
    mask = labels != IGNORE
    return logits[mask], labels[mask]


def scored_pairs(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Student and teacher logits and the labels at the scored positions (a response term's inputs)."""
    if not is_sequence(labels):
        return student, teacher, labels
    mask = labels != IGNORE
    return student[mask], teacher[mask], labels[mask]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over samples, or over scored positions; ``smoothing`` moves that share of each
    label's mass evenly onto every class (label smoothing, against overconfident students)."""
    rows, targets = scored(logits, labels)
    return F.cross_entropy(rows, targets, label_smoothing=smoothing)


def correct(logits: torch.Tensor, labels: torch.Tensor, exact: bool = True) -> torch.Tensor:
    """Bool per scored unit: top-1 right per sample; for sequences, every scored position right per sequence
    (``exact``: an answer is right or wrong as a whole), else each scored position (running text, where a
    whole sequence is never all right)."""
    hits = logits.argmax(-1) == labels
    if not is_sequence(labels):
        return hits
    if not exact:
        return hits[labels != IGNORE]
    return (hits | (labels == IGNORE)).all(-1)


def positions(labels: torch.Tensor) -> torch.Tensor:
    """(M,) the sample each scored position belongs to (arange for classification)."""
    if not is_sequence(labels):
        return torch.arange(len(labels))
    return (labels != IGNORE).nonzero()[:, 0]


def scored_labels(labels: torch.Tensor) -> torch.Tensor:
    """The labels of the scored rows: (B,) unchanged, (B, T) -> (M,)."""
    return labels[labels != IGNORE] if is_sequence(labels) else labels
