"""Small character-level decoder-only transformer for token sequences shaped (T,), e.g. arithmetic."""

from __future__ import annotations

import math

import torch
from torch import nn

from kdcore.models.base import ModelOutput
from kdcore.registry import register_model

HEAD_DIM = 16


def head_count(width: int) -> int:
    """Heads of ``HEAD_DIM`` dims when ``width`` divides into them, else one head of ``width`` dims."""
    return width // HEAD_DIM if width % HEAD_DIM == 0 else 1


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, computed explicitly so its scores and probabilities can be returned."""

    def __init__(self, width: int, heads: int, max_len: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        # True above the diagonal: a query never sees later keys.
        mask = torch.ones(max_len, max_len, dtype=torch.bool).triu(1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The block's update (B, T, width), the masked scores and the probabilities, each (B, H, T, T)."""
        b, t, width = h.shape
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)
        scores = (q @ k.mT / math.sqrt(self.head_dim)).masked_fill(self.mask[:t, :t], float("-inf"))  # (B, H, T, T)
        probs = scores.softmax(dim=-1)
        out = (probs @ v).transpose(1, 2).reshape(b, t, width)  # (B, T, width)
        return self.proj(out), scores, probs


class Block(nn.Module):
    """Pre-norm transformer block: h + attn(LN(h)), then h + mlp(LN(h)) with a 4x GELU MLP."""

    def __init__(self, width: int, heads: int, max_len: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, max_len)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, scores, probs = self.attn(self.ln1(h))
        h = h + a
        return h + self.mlp(self.ln2(h)), scores, probs


class CharTransformer(nn.Module):
    """Decoder-only causal transformer over token ids (B, T) with one shared vocabulary of ``num_classes``.

    Returns next-token logits (B, T, num_classes), the per-block attention probabilities (one (B, H, T, T)
    tensor per block, rows summing to 1 over the keys at or before each query), their pre-softmax scores
    (``attention_logits``, -inf at the later keys, for losses that need exact log-probabilities) and the features
    ``block1`` ... ``blockN`` (residual stream after each block) and ``penultimate`` (final LayerNorm output).
    Features are channels-first, (B, width, T): the toolkit's feature adapters treat rank-2 features as
    (C, L) and map channels with a 1x1 Conv1d, i.e. the same linear map at every position, which is the
    right way to project hidden states. It is not a :class:`BlockNet`, whose forward cannot return attentions.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int, depth: int) -> None:
        super().__init__()
        (max_len,) = input_shape
        self.width, self.heads, self.max_len = width, head_count(width), max_len
        self.tokens = nn.Embedding(num_classes, width)
        self.positions = nn.Embedding(max_len, width)
        self.blocks = nn.ModuleList(Block(width, self.heads, max_len) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        """GPT-2 style: N(0, 0.02) weights for embeddings and linears, zero biases (LayerNorm keeps 1 and 0)."""
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        tokens = x.long()  # shape probes pass float zeros
        t = tokens.shape[1]
        h = self.tokens(tokens) + self.positions.weight[:t]  # (B, T, width)
        features: dict[str, torch.Tensor] = {}
        attentions: list[torch.Tensor] = []
        attention_logits: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks, start=1):
            h, scores, probs = block(h)
            features[f"block{i}"] = h.transpose(1, 2)  # (B, width, T)
            attentions.append(probs)
            attention_logits.append(scores)
        z = self.norm(h)
        features["penultimate"] = z.transpose(1, 2)
        return ModelOutput(self.head(z), features, attentions, attention_logits)


@register_model("transformer", input_rank=1, inputs="tokens", targets="tokens", family="transformer",
                sizes={"tiny": (16, 1), "small": (32, 1), "medium": (48, 2), "large": (64, 4)})
def transformer(input_shape: tuple[int, ...], num_classes: int, width: int = 64, depth: int = 2) -> CharTransformer:
    """Character-level causal transformer: `depth` pre-norm blocks of `width` dims; next-token logits, attention.

    Returns next-token logits (B, T, num_classes), hidden states (B, width, T) and one attention map (and its
    pre-softmax scores) per block.
    """
    return CharTransformer(input_shape, num_classes, width, depth)

