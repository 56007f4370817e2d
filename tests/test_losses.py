"""The loss terms against hand-computed values and their defining properties."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from kdcore.losses.feature import attention_map, attention_transfer, hint_mse, make_adapter
from kdcore.losses.relation import attention_pattern, pkt, rkd_angle, rkd_distance, similarity_preserving
from kdcore.losses.response import dist, dkd, kd_kl
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
    assert torch.equal(TeacherSource(teacher, {"logits": cache}).logits(batch), TeacherSource(teacher).logits(batch))


# --- hand-computed values: numpy arithmetic straight from each paper's formula -------------------------------------


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.double().numpy()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * np.log(p / q)))


def _huber(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 1, 0.5 * x**2, np.abs(x) - 0.5)


def test_dkd_matches_hand_computed_value() -> None:
    s = torch.tensor([[1.0, 2.0, 3.0, 0.5], [0.2, -1.0, 2.0, 1.0]])
    t = torch.tensor([[3.0, 1.0, 0.0, 2.0], [1.0, 0.0, 4.0, -2.0]])
    target, temperature, alpha, beta = torch.tensor([0, 2]), 2.0, 1.5, 6.0
    total = 0.0
    for z_s, z_t, y in zip(_np(s), _np(t), target.tolist(), strict=True):
        p_s, p_t = _softmax(z_s / temperature), _softmax(z_t / temperature)
        tckd = _kl(np.array([p_t[y], 1 - p_t[y]]), np.array([p_s[y], 1 - p_s[y]]))
        q_s, q_t = np.delete(p_s, y), np.delete(p_t, y)
        nckd = _kl(q_t / q_t.sum(), q_s / q_s.sum())
        total += temperature**2 * (alpha * tckd + beta * nckd)
    expected = total / 2
    assert dkd(s, t, target, temperature, alpha, beta).item() == pytest.approx(expected, rel=1e-5)


def test_dkd_with_beta_zero_and_alpha_one_is_kd_when_non_targets_agree() -> None:
    # Same non-target shape on both sides: NCKD is zero and TCKD alone equals the full KD term.
    s, t = torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    target = torch.tensor([0])
    assert dkd(s, t, target, 1.0, 1.0, 0.0).item() == pytest.approx(kd_kl(s, t, 1.0).item(), rel=1e-5)


def test_dist_matches_hand_computed_value() -> None:
    s, t = torch.randn(3, 4), torch.randn(3, 4)
    temperature, beta, gamma = 2.0, 1.0, 2.0
    p_s, p_t = _softmax(_np(s) / temperature), _softmax(_np(t) / temperature)
    inter = 1 - np.mean([np.corrcoef(p_s[i], p_t[i])[0, 1] for i in range(3)])
    intra = 1 - np.mean([np.corrcoef(p_s[:, k], p_t[:, k])[0, 1] for k in range(4)])
    expected = temperature**2 * (beta * inter + gamma * intra)
    assert dist(s, t, temperature, beta, gamma).item() == pytest.approx(expected, rel=1e-5)


def test_hint_mse_matches_hand_computed_value() -> None:
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert hint_mse(s, t).item() == pytest.approx(float(np.mean((_np(s) - _np(t)) ** 2)), rel=1e-6)


def _np_attention_map(a: np.ndarray, p: int) -> np.ndarray:
    q = (np.abs(a) ** p).sum(axis=1).reshape(len(a), -1)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@pytest.mark.parametrize("p", [1, 2, 4])
def test_attention_map_matches_hand_computed_value(p: int) -> None:
    a = torch.randn(2, 3, 4, 5)
    got = attention_map(a, p)
    assert got.shape == (2, 20)
    np.testing.assert_allclose(got.numpy(), _np_attention_map(_np(a), p), rtol=1e-5)
    assert attention_map(torch.randn(2, 3, 7), p).shape == (2, 7)


def test_attention_transfer_matches_hand_computed_value_and_pools_the_larger_map() -> None:
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)
    pooled = _np(s).reshape(2, 3, 2, 2, 2, 2).mean(axis=(3, 5))  # 2x2 block means: (2, 3, 2, 2)
    expected = np.mean((_np_attention_map(pooled, 2) - _np_attention_map(_np(t), 2)) ** 2)
    assert attention_transfer(s, t).item() == pytest.approx(float(expected), rel=1e-5)
    assert attention_transfer(t, s).item() == pytest.approx(float(expected), rel=1e-5)


def test_rkd_distance_matches_hand_computed_value() -> None:
    s, t = torch.randn(4, 3), torch.randn(4, 5)

    def psi(e: np.ndarray) -> np.ndarray:
        d = np.sqrt(((e[:, None, :] - e[None, :, :]) ** 2).sum(-1))
        return d / d[~np.eye(len(e), dtype=bool)].mean()

    expected = _huber(psi(_np(s)) - psi(_np(t))).mean()
    assert rkd_distance(s, t).item() == pytest.approx(float(expected), rel=1e-5)


def test_rkd_angle_matches_hand_computed_value() -> None:
    s, t = torch.randn(4, 3), torch.randn(4, 5)

    def psi(e: np.ndarray) -> np.ndarray:
        out = np.zeros((len(e),) * 3)
        for i in range(len(e)):
            for j in range(len(e)):
                for k in range(len(e)):
                    if i != j and k != j:  # the angle at vertex e_j; undefined (0) when a side has no length
                        u, v = e[i] - e[j], e[k] - e[j]
                        out[i, j, k] = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
        return out

    expected = _huber(psi(_np(s)) - psi(_np(t))).mean()
    assert rkd_angle(s, t).item() == pytest.approx(float(expected), rel=1e-5)


def test_similarity_preserving_matches_hand_computed_value() -> None:
    s, t = torch.randn(3, 2, 2, 2), torch.randn(3, 6)

    def gram(f: np.ndarray) -> np.ndarray:
        f = f.reshape(len(f), -1)
        g = f @ f.T
        return g / np.linalg.norm(g, axis=1, keepdims=True)

    expected = np.sum((gram(_np(s)) - gram(_np(t))) ** 2) / 3**2
    assert similarity_preserving(s, t).item() == pytest.approx(float(expected), rel=1e-5)


def test_pkt_matches_hand_computed_value() -> None:
    s, t = torch.randn(4, 3), torch.randn(4, 6)

    def conditional(e: np.ndarray) -> np.ndarray:
        k = np.array([[(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) + 1) / 2 for b in e] for a in e])
        return k / k.sum(axis=1, keepdims=True)

    p_s, p_t = conditional(_np(s)), conditional(_np(t))
    expected = np.mean(p_t * np.log(p_t / p_s))  # the authors' (and RepDistiller's) mean over all B^2 pairs
    assert pkt(s, t).item() == pytest.approx(float(expected), rel=1e-4)
    per_sample = np.mean([_kl(p_t[i], p_s[i]) for i in range(4)])
    assert pkt(s, t).item() == pytest.approx(float(per_sample) / 4, rel=1e-4)  # so its weight 30000 means theirs


def test_attention_pattern_matches_hand_computed_value_with_head_averaging() -> None:
    s = [torch.randn(2, 2, 3, 3)]  # one layer, 2 heads, pre-softmax scores
    t = [torch.randn(2, 4, 3, 3).softmax(-1) for _ in range(2)]  # two layers, 4 heads, probabilities
    a_s, a_t = _np(s[0].softmax(-1)).mean(axis=1), _np(t[1]).mean(axis=1)  # one-layer student: last teacher layer
    expected = np.mean([_kl(a_t[b, q], a_s[b, q]) for b in range(2) for q in range(3)])
    assert attention_pattern(s, t).item() == pytest.approx(float(expected), rel=1e-5)


def test_attention_pattern_maps_layers_uniformly() -> None:
    t = [torch.randn(2, 2, 4, 4) for _ in range(5)]
    p = [a.softmax(-1) for a in t]
    assert attention_pattern([t[0], t[2], t[4]], p).item() == pytest.approx(0.0, abs=1e-6)  # i -> round(i * 4 / 2)
    assert attention_pattern([t[0], t[1], t[4]], p).item() > 0
    assert attention_pattern([t[0], t[4]], p).item() == pytest.approx(0.0, abs=1e-6)


# --- properties shared by every term ---------------------------------------------------------------------------------

_TARGET = torch.tensor([0, 1, 2, 3, 4, 0])

# name -> (loss on (student, teacher), a student-shaped input; the teacher gets another draw of the same shape)
CASES: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], Callable[[], torch.Tensor]]] = {
    "kd_kl": (lambda s, t: kd_kl(s, t, 2.0), lambda: torch.randn(6, 5)),
    "dkd": (lambda s, t: dkd(s, t, _TARGET, 2.0), lambda: torch.randn(6, 5)),
    "dist": (lambda s, t: dist(s, t, 1.0), lambda: torch.randn(6, 5)),
    "hint_mse": (hint_mse, lambda: torch.randn(4, 3, 5, 5)),
    "attention_transfer": (attention_transfer, lambda: torch.randn(4, 3, 5, 5)),
    "rkd_distance": (rkd_distance, lambda: torch.randn(6, 8)),
    "rkd_angle": (rkd_angle, lambda: torch.randn(6, 8)),
    "similarity_preserving": (similarity_preserving, lambda: torch.randn(6, 3, 2, 2)),
    "pkt": (pkt, lambda: torch.randn(6, 8)),
    "attention_pattern": (  # (layers, B, H, T, T) scores; the teacher side is read as its probabilities
        lambda s, t: attention_pattern(list(s), list(t.softmax(-1))),
        lambda: torch.randn(2, 3, 2, 4, 4),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_loss_is_zero_for_identical_inputs_and_positive_otherwise(name: str) -> None:
    loss, make = CASES[name]
    x = make()
    assert loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-5)
    assert loss(x, make()).item() > 1e-4


@pytest.mark.parametrize("name", list(CASES))
def test_loss_is_a_float32_scalar_for_half_precision_inputs(name: str) -> None:
    loss, make = CASES[name]
    out = loss(make().bfloat16(), make().bfloat16())
    assert out.shape == () and out.dtype == torch.float32


@pytest.mark.parametrize("name", [n for n in CASES if n != "kd_kl"])  # kd_kl predates this contract and is kept as is
def test_gradients_reach_the_student_and_never_the_teacher(name: str) -> None:
    loss, make = CASES[name]
    s, t = make().requires_grad_(True), make().requires_grad_(True)
    loss(s, t).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0 and torch.isfinite(s.grad).all()


@pytest.mark.parametrize("loss", [rkd_distance, rkd_angle, similarity_preserving])
def test_relation_terms_ignore_a_uniform_scaling_of_the_embeddings(loss: Callable) -> None:
    s, t = torch.randn(6, 8), torch.randn(6, 4)
    assert loss(3.0 * s, t).item() == pytest.approx(loss(s, t).item(), rel=1e-4)
    assert loss(s, 0.2 * t).item() == pytest.approx(loss(s, t).item(), rel=1e-4)


def test_attention_map_ignores_channel_order() -> None:
    a = torch.randn(2, 6, 4, 4)
    torch.testing.assert_close(attention_map(a[:, torch.randperm(6)]), attention_map(a))


# --- shape errors and adapters ---------------------------------------------------------------------------------------


def test_hint_mse_names_both_shapes_when_they_differ() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*\(2, 5, 4, 4\)"):
        hint_mse(torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4))


def test_attention_needs_spatial_features() -> None:
    with pytest.raises(ValueError, match="spatial"):
        attention_map(torch.randn(4, 8))
    with pytest.raises(ValueError, match="spatial"):
        attention_transfer(torch.randn(4, 8), torch.randn(4, 8))


@pytest.mark.parametrize(
    ("student_shape", "teacher_shape", "kinds"),
    [
        ((8,), (8,), [nn.Identity]),
        ((4,), (6,), [nn.Linear]),
        ((4, 10), (6, 10), [nn.Conv1d, nn.BatchNorm1d]),
        ((4, 10), (6, 5), [nn.AdaptiveAvgPool1d, nn.Conv1d, nn.BatchNorm1d]),
        ((4, 8, 8), (6, 8, 8), [nn.Conv2d, nn.BatchNorm2d]),
        ((4, 8, 8), (6, 4, 4), [nn.AdaptiveAvgPool2d, nn.Conv2d, nn.BatchNorm2d]),
    ],
)
def test_make_adapter_maps_student_shape_to_teacher_shape(student_shape, teacher_shape, kinds) -> None:
    adapter = make_adapter(student_shape, teacher_shape)
    layers = list(adapter) if isinstance(adapter, nn.Sequential) else [adapter]
    assert [type(m) for m in layers] == kinds
    assert adapter(torch.randn(2, *student_shape)).shape == (2, *teacher_shape)


def test_make_adapter_rejects_shapes_of_different_rank() -> None:
    with pytest.raises(ValueError, match=r"\(4, 8, 8\).*\(6, 8\)"):
        make_adapter((4, 8, 8), (6, 8))


@pytest.mark.parametrize("name", list(CASES))
def test_loss_is_computed_in_float32_inside_an_autocast_region(name: str) -> None:
    loss, make = CASES[name]
    s, t = make(), make()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = loss(s, t)
    assert amp.item() == pytest.approx(loss(s, t).item(), rel=1e-5)
