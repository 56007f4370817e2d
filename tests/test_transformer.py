"""The character-level transformer: shapes, causality, heads, dtype handling, learning, attention transfer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdcore.losses.relation import attention_pattern
from kdcore.models.base import ModelOutput
from kdcore.models.transformer import CharTransformer
from kdcore.registry import MODELS

T, V = 12, 14


def build(width: int, depth: int, seed: int = 0) -> CharTransformer:
    torch.manual_seed(seed)
    return MODELS.get("transformer")(input_shape=(T,), num_classes=V, width=width, depth=depth)


def tokens(batch: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (batch, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("width", "depth"), [(16, 1), (48, 2), (64, 4)])
def test_shapes_of_logits_features_and_attentions(width: int, depth: int) -> None:
    net = build(width, depth)
    out = net(tokens(3))
    assert isinstance(out, ModelOutput) and out.logits.shape == (3, T, V)
    assert set(out.features) == {*(f"block{i}" for i in range(1, depth + 1)), "penultimate"}
    assert all(f.shape == (3, width, T) for f in out.features.values())
    assert out.attentions is not None and len(out.attentions) == depth
    assert all(a.shape == (3, net.heads, T, T) for a in out.attentions)


def test_attention_is_a_causal_distribution() -> None:
    out = build(64, 4)(tokens(5))
    upper = torch.ones(T, T, dtype=torch.bool).triu(1)
    for a in out.attentions:
        assert torch.allclose(a.sum(-1), torch.ones(a.shape[:-1]), atol=1e-5)
        assert (a[..., upper] == 0).all()


def test_attention_logits_are_the_masked_scores_behind_the_attentions() -> None:
    out = build(48, 2)(tokens(3))
    upper = torch.ones(T, T, dtype=torch.bool).triu(1)
    assert out.attention_logits is not None and len(out.attention_logits) == len(out.attentions) == 2
    for scores, a in zip(out.attention_logits, out.attentions, strict=True):
        assert scores.shape == a.shape
        assert scores[..., upper].isneginf().all() and torch.isfinite(scores[..., ~upper]).all()
        torch.testing.assert_close(scores.softmax(-1), a)


@pytest.mark.parametrize("t", [0, 5, T - 1])
def test_a_token_only_changes_logits_at_and_after_its_position(t: int) -> None:
    net = build(32, 2).eval()
    x = tokens(4)
    changed = x.clone()
    changed[:, t] = (changed[:, t] + 1) % V
    with torch.no_grad():
        before, after = net(x).logits, net(changed).logits
    assert torch.equal(before[:, :t], after[:, :t])
    assert not torch.allclose(before[:, t:], after[:, t:])


@pytest.mark.parametrize(("width", "heads"), [(64, 4), (48, 3), (16, 1), (24, 1)])
def test_heads_are_16_dims_when_the_width_allows(width: int, heads: int) -> None:
    net = build(width, 1)
    assert net.heads == heads and net(tokens(2)).attentions[0].shape[1] == heads


def test_float_ids_give_the_same_result_as_int64() -> None:
    net = build(32, 2)
    x = tokens(4)
    a, b = net(x), net(x.float())
    assert torch.equal(a.logits, b.logits)
    assert all(torch.equal(a.features[k], b.features[k]) for k in a.features)
    assert net(torch.zeros(2, T)).logits.shape == (2, T, V)  # the shape probe


def test_a_tiny_model_overfits_a_few_sequences() -> None:
    net = build(32, 1)
    x = tokens(8, seed=7)
    x[:, 0] = torch.randperm(V, generator=torch.Generator().manual_seed(7))[:8]  # distinct prefixes: learnable
    y = torch.roll(x, -1, dims=1)  # next token; the last position predicts the first, which it can see
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(100):  # it gets there in about 30 steps
        loss = F.cross_entropy(net(x).logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        accuracy = (net(x).logits.argmax(-1) == y).float().mean().item()
    assert accuracy > 0.95


def test_attention_pattern_between_models_of_different_depth_and_heads() -> None:
    student, teacher = build(16, 1, seed=0), build(64, 4, seed=1)
    x = tokens(4)
    s, out_t = student(x).attention_logits, teacher(x)
    t = out_t.attentions
    assert len(s) == 1 and len(t) == 4 and s[0].shape[1] != t[0].shape[1]
    loss = attention_pattern(s, t)
    assert torch.isfinite(loss) and loss >= 0
    loss.backward()
    grad = student.blocks[0].attn.qkv.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert attention_pattern(out_t.attention_logits, [a.detach() for a in t]).abs() < 1e-5
