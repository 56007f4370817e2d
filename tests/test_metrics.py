"""Metric functions on hand-built predictions."""

from __future__ import annotations

import math

import pytest
import torch

from kdcore.metrics import (
    accuracy,
    agreement,
    expected_calibration_error,
    mean_entropy,
    peak_memory_mb,
    per_class_accuracy,
)
from kdcore.models.mlp import mlp


def test_entropy_of_uniform_is_ln_k_and_of_one_hot_is_zero() -> None:
    assert mean_entropy(torch.full((3, 10), 0.1)) == pytest.approx(math.log(10), rel=1e-6)
    assert mean_entropy(torch.eye(4)) == pytest.approx(0.0, abs=1e-6)


def test_ece_by_hand() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = torch.tensor([0, 1, 0, 0])
    # bin (0.867, 0.933]: conf 0.9, acc 0.5; bin (0.533, 0.6]: conf 0.6, acc 1.0 -> 0.5*0.4 + 0.5*0.4
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4, abs=1e-6)


def test_accuracy_agreement_and_per_class() -> None:
    probs = torch.tensor([[0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.6, 0.4, 0.0]])
    labels = torch.tensor([0, 1, 1])
    assert accuracy(probs, labels) == pytest.approx(2 / 3)
    other = torch.tensor([[0.1, 0.9, 0.0], [0.1, 0.9, 0.0], [0.0, 0.0, 1.0]])
    assert agreement(probs, other) == pytest.approx(1 / 3)
    per_class = per_class_accuracy(probs, labels, 3)
    assert per_class[:2] == [1.0, 0.5] and math.isnan(per_class[2])


def test_cpu_memory_grows_with_the_model() -> None:
    x = torch.randn(1, 40)
    assert peak_memory_mb(mlp((40,), 10, 512, 2), x) > 2 * peak_memory_mb(mlp((40,), 10, 32, 2), x)
