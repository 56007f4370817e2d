"""The KD loss term against hand-computed values and its defining properties."""

from __future__ import annotations

import math

import pytest
import torch

from kdcore.losses.response import kd_kl
from kdcore.methods.base import Batch, TeacherSource
from kdcore.methods.kd import KD
from kdcore.models.mlp import mlp
from tests.helpers import tiny_config


def test_kd_kl_matches_hand_computed_value() -> None:
    s = torch.tensor([[1.0, 2.0, 3.0]])
    t = torch.tensor([[3.0, 1.0, 0.0]])
    temperature = 2.0
    p_s = [math.exp(v / temperature) for v in (1.0, 2.0, 3.0)]
    p_t = [math.exp(v / temperature) for v in (3.0, 1.0, 0.0)]
    p_s = [v / sum(p_s) for v in p_s]
    p_t = [v / sum(p_t) for v in p_t]
    expected = temperature**2 * sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s, strict=True))
    assert kd_kl(s, t, temperature).item() == pytest.approx(expected, rel=1e-6)


def test_kd_kl_is_batch_mean_not_sum() -> None:
    s, t = torch.randn(1, 5), torch.randn(1, 5)
    single = kd_kl(s, t, 3.0)
    assert kd_kl(s.repeat(7, 1), t.repeat(7, 1), 3.0).item() == pytest.approx(single.item(), rel=1e-6)


def test_kd_kl_scales_with_t_squared() -> None:
    # With the temperature folded into the logits, only the T^2 factor differs.
    s, t = torch.randn(4, 10), torch.randn(4, 10)
    assert kd_kl(s * 4, t * 4, 4.0).item() == pytest.approx(16 * kd_kl(s, t, 1.0).item(), rel=1e-5)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
def test_kd_kl_is_zero_at_identical_logits_and_positive_otherwise(temperature: float) -> None:
    logits = torch.randn(8, 10)
    assert kd_kl(logits, logits.clone(), temperature).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_kl(logits, torch.randn(8, 10), temperature).item() > 0


def test_gradients_reach_only_the_student() -> None:
    cfg = tiny_config()
    student, teacher = mlp((1, 8, 8), 10, 8, 1), mlp((1, 8, 8), 10, 16, 1)
    method = KD(student, TeacherSource(teacher), cfg.distill)
    batch = Batch(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)), torch.arange(16))
    out = method.step(batch)
    sum(out.losses.values()).backward()
    assert set(out.losses) == {"ce", "kd"}
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert {id(p) for p in method.trainable_parameters()} == {id(p) for p in student.parameters()}


def test_cached_teacher_logits_equal_live_ones() -> None:
    teacher = mlp((1, 8, 8), 10, 16, 1).eval()
    x = torch.randn(32, 1, 8, 8)
    with torch.no_grad():
        cache = teacher(x).logits
    batch = Batch(x[5:9], torch.zeros(4, dtype=torch.long), torch.arange(5, 9))
    assert torch.equal(TeacherSource(teacher, cache).logits(batch), TeacherSource(teacher).logits(batch))
