"""Character-level arithmetic: next-token prediction of problems like ``47+38=85$``.

A generated text set for small sequence models. Each problem ``a+b=c$`` is a string of ids from
``VOCAB``; the input ``x`` holds every token but the last, right-padded to ``LENGTH``, and the target
``y`` holds the next token at each position, kept only where that token belongs to the answer (its
digits and the closing ``$``), so losses and metrics see the answer alone. In-distribution operands
have 1 or 2 digits (10,000 distinct problems); the shifted test split asks for 3-digit sums, a length
the model never saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from kdcore.data.splits import DatasetSplits, Split
from kdcore.registry import register_dataset

VOCAB = "0123456789+=$."  # digits are ids 0-9; '$' ends the answer, '.' pads
EQUALS, END, PAD = VOCAB.index("="), VOCAB.index("$"), VOCAB.index(".")
IGNORE = -100  # target of the positions outside the answer, skipped by the loss
LENGTH = 12  # input positions of the longest problem, 999+999=1998$ (13 tokens)
OPERANDS = (0, 100)  # in-distribution operands, 1 or 2 digits
SHIFT_OPERANDS = (100, 1000)  # shifted operands, exactly 3 digits
DEFAULT_SAMPLES = (OPERANDS[1] - OPERANDS[0]) ** 2  # all 10,000 problems
SHIFT = "longer problems: both operands have 3 digits (100-999) instead of 1 or 2 (0-99)"


def encode(problem: str) -> list[int]:
    """Token ids of a string over ``VOCAB``."""
    return [VOCAB.index(char) for char in problem]


def decode(tokens: Sequence[int] | torch.Tensor | np.ndarray) -> str:
    """Characters of token ids, dropping padding and ignored targets (so ``decode(y)`` gives the answer)."""
    return "".join(VOCAB[t] for t in (int(t) for t in tokens) if t not in (PAD, IGNORE))


def example(a: int, b: int) -> tuple[list[int], list[int]]:
    """Input and target rows (``LENGTH`` ids each) of the problem ``a+b=(a+b)$``."""
    tokens = encode(f"{a}+{b}={a + b}$")
    answer_from = tokens.index(EQUALS)  # position whose next token is the first answer digit
    x = tokens[:-1] + [PAD] * (LENGTH + 1 - len(tokens))
    y = [t if i >= answer_from else IGNORE for i, t in enumerate(tokens[1:])]
    return x, y + [IGNORE] * (LENGTH - len(y))


def sample_pairs(n: int, operands: tuple[int, int], seed: int) -> np.ndarray:
    """``n`` distinct ordered pairs (a, b) with both in ``range(*operands)``, drawn without replacement."""
    low, high = operands
    idx = np.random.default_rng(seed).choice((high - low) ** 2, size=n, replace=False)
    return np.stack([low + idx // (high - low), low + idx % (high - low)], axis=1)  # (n, 2)


def make_split(pairs: np.ndarray) -> Split:
    """Encode (n, 2) operand pairs as int64 token inputs (n, LENGTH) and targets (n, LENGTH)."""
    rows = [example(int(a), int(b)) for a, b in pairs]
    x = np.array([r[0] for r in rows], dtype=np.int64).reshape(len(rows), LENGTH)
    y = np.array([r[1] for r in rows], dtype=np.int64).reshape(len(rows), LENGTH)
    return Split(torch.as_tensor(x, dtype=torch.int64), torch.as_tensor(y, dtype=torch.int64))


def problems(split: Split) -> list[str]:
    """The prompt of each row, up to and including '=' (e.g. ``47+38=``), for showing examples."""
    return [decode(row).split("=")[0] + "=" for row in split.x]


def random_splits(n: int, val_fraction: float, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Indices of a seeded, unstratified train / val / test split of ``n`` items."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    return order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]


@register_dataset("arithmetic", input_shape=(LENGTH,), num_classes=len(VOCAB), generated=True, modality="text",
                  targets="tokens", vocab=VOCAB)
def arithmetic(cfg) -> DatasetSplits:
    """Arithmetic, character level: next-token prediction of a+b=c with 1-2 digit operands (10,000 problems)."""
    n = cfg.n_samples or DEFAULT_SAMPLES
    if n > DEFAULT_SAMPLES:
        raise ValueError(f"data.n_samples: arithmetic has {DEFAULT_SAMPLES:,} distinct problems with 1-2 digit "
                         f"operands; allowed: 100 to {DEFAULT_SAMPLES}")
    pairs = sample_pairs(n, OPERANDS, seed=42)
    train, val, test = (make_split(pairs[i]) for i in random_splits(n, cfg.val_fraction, cfg.test_fraction,
                                                                  cfg.split_seed))
    shifted = make_split(sample_pairs(len(test), SHIFT_OPERANDS, seed=4242))
    return DatasetSplits("arithmetic", train, val, test, shifted,
                         num_classes=len(VOCAB), input_shape=(LENGTH,), shift=SHIFT)
