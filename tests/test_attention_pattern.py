"""attention_pattern against a float64 KL from log_softmax, on peaked causal attention scores.

Where the student is confident and wrong its attention probability underflows; the loss and its gradient
must still be those of the exact KL(teacher || student), not of a clamped log.
"""

from __future__ import annotations

import pytest
import torch

from kdcore.losses.relation import attention_pattern

B, H, T = 3, 2, 16
CAUSAL = torch.ones(T, T, dtype=torch.bool).triu(1)  # True above the diagonal: later keys are masked


def scores(std: float, seed: int, heads: int = H) -> torch.Tensor:
    """Random float32 attention scores (B, heads, T, T) with the given spread, -inf at the causal mask."""
    g = torch.Generator().manual_seed(seed)
    return (std * torch.randn(B, heads, T, T, generator=g)).masked_fill(CAUSAL, float("-inf"))


def reference_kl(log_s: torch.Tensor, log_t: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per row from float64 log-probabilities (..., T, T), averaged over the rows.

    Masked keys add 0 (and pass no gradient): they are replaced before the product, never multiplied as -inf.
    """
    log_s, log_t = log_s.masked_fill(CAUSAL, 0.0), log_t.masked_fill(CAUSAL, 0.0)
    kl = torch.where(~CAUSAL, log_t.exp() * (log_t - log_s), 0.0)
    return kl.sum(-1).mean()


@pytest.mark.parametrize("std", [5.0, 50.0])
def test_value_and_gradient_match_a_float64_kl_from_log_softmax(std: float) -> None:
    s_logits = scores(std, seed=1).requires_grad_(True)
    t_logits = scores(std, seed=2)
    loss = attention_pattern([s_logits], [t_logits.softmax(-1)])  # the teacher as the models log it: probabilities
    loss.backward()
    assert s_logits.grad is not None

    s64 = s_logits.detach().double().requires_grad_(True)
    expected = reference_kl(s64.log_softmax(-1), t_logits.double().log_softmax(-1))
    expected.backward()
    assert s64.grad is not None

    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.isfinite(s_logits.grad).all()
    grad_scale = 1.0 / (B * H * T)  # each row's gradient is (softmax(s) - p_t) / rows
    torch.testing.assert_close(s_logits.grad, s64.grad.float(), rtol=1e-4, atol=1e-6 * grad_scale)
    assert (s_logits.grad[..., CAUSAL] == 0).all()  # masked keys get no gradient

    # Confidently wrong: the student gives a key almost nothing that the teacher attends to.
    p_s, p_t = s64.detach().softmax(-1), t_logits.double().softmax(-1)
    wrong = (p_s < 1e-8) & (p_t > 1e-2)
    assert wrong.sum() > 0, "the draw must contain confidently wrong keys"
    assert (s_logits.grad[wrong].abs() > 0.5 * p_t[wrong].float() * grad_scale).all()


def test_heads_averaged_as_probabilities_match_float64_with_no_nan() -> None:
    s_logits = scores(50.0, seed=3, heads=2).requires_grad_(True)
    t_logits = scores(50.0, seed=4, heads=4)
    loss = attention_pattern([s_logits], [t_logits.softmax(-1)])
    loss.backward()

    s64 = s_logits.detach().double().requires_grad_(True)

    def log_head_mean(x: torch.Tensor) -> torch.Tensor:  # log of the head-averaged probabilities, (B, 1, T, T)
        return x.double().softmax(-1).mean(1, keepdim=True).masked_fill(CAUSAL, 1.0).log()

    expected = reference_kl(log_head_mean(s64), log_head_mean(t_logits))
    expected.backward()

    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.isfinite(s_logits.grad).all()
    torch.testing.assert_close(s_logits.grad, s64.grad.float(), rtol=1e-4, atol=1e-6 / (B * T))


def test_a_student_that_is_sure_of_the_wrong_key_gets_the_full_loss_and_gradient() -> None:
    """Each row: the teacher attends to the first key, the student puts +60 on the query's own key instead."""
    t_logits = torch.zeros(1, 1, T, T).masked_fill(CAUSAL, float("-inf"))
    t_logits[..., 0] = 60.0
    s_logits = torch.zeros(1, 1, T, T)
    s_logits[..., range(T), range(T)] = 60.0
    s_logits = s_logits.masked_fill(CAUSAL, float("-inf")).requires_grad_(True)
    loss = attention_pattern([s_logits], [t_logits.softmax(-1)])
    loss.backward()
    assert s_logits.grad is not None
    # Rows 1..T-1 cost about 60 nats each (row 0 has one key and costs nothing).
    expected = reference_kl(s_logits.detach().double().log_softmax(-1), t_logits.double().log_softmax(-1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() > 50 * (T - 1) / T
    assert s_logits.grad[0, 0, 1:, 0].lt(-0.9 / T).all()  # pushes the teacher's key up
    assert s_logits.grad[0, 0, range(1, T), range(1, T)].gt(0.9 / T).all()  # and the student's choice down
