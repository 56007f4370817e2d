"""Class labels and token sequences through one set of losses and metrics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdcore import targets
from kdcore.metrics import prediction_metrics
from kdcore.targets import IGNORE


def test_classification_passes_through() -> None:
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    rows, y = targets.scored(logits, labels)
    assert rows is logits and y is labels
    assert targets.cross_entropy(logits, labels) == pytest.approx(F.cross_entropy(logits, labels).item())
    assert torch.equal(targets.correct(logits, labels), logits.argmax(-1) == labels)


def test_sequences_score_only_their_labelled_positions() -> None:
    logits = torch.full((2, 4, 5), -5.0)
    labels = torch.tensor([[IGNORE, 1, 2, IGNORE], [IGNORE, 3, 4, IGNORE]])
    logits[0, 1, 1] = logits[0, 2, 2] = 5.0  # sequence 0: both scored positions right
    logits[1, 1, 3] = logits[1, 2, 0] = 5.0  # sequence 1: the second one wrong
    logits[:, 0, 0] = logits[:, 3, 0] = 99.0  # unscored positions never count
    rows, y = targets.scored(logits, labels)
    assert rows.shape == (4, 5) and y.tolist() == [1, 2, 3, 4]
    assert targets.correct(logits, labels).tolist() == [True, False]
    assert targets.positions(labels).tolist() == [0, 0, 1, 1]
    expected = F.cross_entropy(rows, y).item()
    assert targets.cross_entropy(logits, labels).item() == pytest.approx(expected)


def test_sequence_metrics_are_exact_match_with_token_numbers_beside() -> None:
    labels = torch.tensor([[1, 2, IGNORE], [3, IGNORE, IGNORE], [0, 4, 1]])
    rows = targets.scored_labels(labels)
    probs = F.one_hot(rows, 5).float() * 0.9 + 0.02
    probs[0] = torch.tensor([0.9, 0.025, 0.025, 0.025, 0.025])  # first token of sequence 0 wrong
    metrics = prediction_metrics(probs, labels, None, "test")
    assert metrics["test/acc"] == pytest.approx(2 / 3)  # sequences 1 and 2 entirely right
    assert metrics["test/token_acc"] == pytest.approx(5 / 6)
    nll = -probs.gather(1, rows[:, None]).log().mean().item()
    assert metrics["test/perplexity"] == pytest.approx(math.exp(nll))
