"""Arithmetic: exact encoding, seeded splits, targets that hold exactly the answer, 3-digit shift."""

from __future__ import annotations

import pytest
import torch

from kdcore.config import DataConfig
from kdcore.data.arithmetic import IGNORE, LENGTH, PAD, VOCAB, decode, encode, example, problems
from kdcore.data.splits import DatasetSplits, Split, load_dataset
from kdcore.registry import DATASETS


@pytest.fixture(scope="module")
def data() -> DatasetSplits:
    return load_dataset(DataConfig(name="arithmetic", n_samples=2000))


def operands(split: Split) -> list[tuple[int, int]]:
    """(a, b) of every row, read back from its prompt."""
    return [tuple(int(v) for v in p[:-1].split("+")) for p in problems(split)]  # type: ignore[misc]


def test_known_problem_encodes_to_exact_inputs_and_targets() -> None:
    x, y = example(47, 38)
    assert encode("47+38=85$") == [4, 7, 10, 3, 8, 11, 8, 5, 12]
    assert x == [4, 7, 10, 3, 8, 11, 8, 5, 13, 13, 13, 13]
    assert y == [IGNORE] * 5 + [8, 5, 12] + [IGNORE] * 4
    assert decode(x) == "47+38=85" and decode(y) == "85$"
    longest_x, longest_y = example(999, 999)
    assert len(longest_x) == len(longest_y) == LENGTH and PAD not in longest_x
    assert decode(longest_y) == "1998$"


def test_registered_with_token_shape_and_vocab(data: DatasetSplits) -> None:
    meta = DATASETS.entry("arithmetic").meta
    assert meta["input_shape"] == (LENGTH,) and meta["num_classes"] == len(VOCAB) == 14
    assert meta["vocab"] == VOCAB and meta["generated"]
    assert data.num_classes == 14 and data.input_shape == (LENGTH,)
    assert len(data.train) + len(data.val) + len(data.test) == 2000
    assert len(data.test_shifted) == len(data.test) == 300
    for split in (data.train, data.val, data.test, data.test_shifted):
        assert split.x.dtype == split.y.dtype == torch.int64
        assert split.x.shape == split.y.shape == (len(split), LENGTH)


def test_same_config_same_tensors_and_another_split_seed_another_split(data: DatasetSplits) -> None:
    again = load_dataset(DataConfig(name="arithmetic", n_samples=2000))
    for name in ("train", "val", "test", "test_shifted"):
        a, b = getattr(data, name), getattr(again, name)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y), name
    other = load_dataset(DataConfig(name="arithmetic", n_samples=2000, split_seed=1))
    assert not torch.equal(data.test.x, other.test.x)
    assert set(problems(data.train) + problems(data.val) + problems(data.test)) == set(
        problems(other.train) + problems(other.val) + problems(other.test))


def test_targets_are_the_answer_of_each_prompt(data: DatasetSplits) -> None:
    for split in (data.test, data.test_shifted):
        for (a, b), prompt, x, y in zip(operands(split), problems(split), split.x, split.y, strict=True):
            assert prompt == f"{a}+{b}="
            assert decode(y) == f"{a + b}$"
            kept = (y != IGNORE).nonzero().flatten()
            assert int(kept[0]) == len(prompt) - 1  # '=' predicts the first answer digit
            assert torch.equal(y[kept[:-1]], x[kept[1:]])  # each target is the next input token


def test_splits_disjoint_and_shift_has_three_digit_operands(data: DatasetSplits) -> None:
    seen = [set(problems(split)) for split in (data.train, data.val, data.test)]
    assert sum(map(len, seen)) == 2000  # distinct within and across splits
    for split in (data.train, data.val, data.test):
        assert all(0 <= a <= 99 and 0 <= b <= 99 for a, b in operands(split))
    shifted = operands(data.test_shifted)
    assert len(set(shifted)) == len(shifted)
    assert all(100 <= a <= 999 and 100 <= b <= 999 for a, b in shifted)


def test_default_takes_all_problems_and_too_many_is_refused() -> None:
    full = load_dataset(DataConfig(name="arithmetic"))
    assert len(full.train) + len(full.val) + len(full.test) == 10_000
    with pytest.raises(ValueError, match=r"data\.n_samples"):
        load_dataset(DataConfig(name="arithmetic", n_samples=20_000))
