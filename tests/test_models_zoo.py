"""The CIFAR model zoo of the distillation literature (ResNets, Wide ResNets) and the optional CIFAR loaders."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from itertools import pairwise
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import torch

from kdcore.data.splits import cache_dir
from kdcore.models.base import ModelOutput, count_parameters
from kdcore.models.wrn import WideResNet
from kdcore.registry import DATASETS, MODELS

ZOO = [e.name for e in MODELS if e.meta.get("family") in ("resnet", "wrn")]
FIXED = [name for name in ZOO if MODELS.entry(name).meta.get("fixed_size")]
CIFAR = (3, 32, 32)


def resnet_count(blocks: int, channels: tuple[int, ...], in_channels: int = 3, classes: int = 100) -> int:
    """Parameters of a CIFAR ResNet by hand: 3x3 convs without bias, BN (2 per channel), 1x1-conv-BN projections."""
    total = 9 * in_channels * channels[0] + 2 * channels[0]  # stem conv + BN
    for (c_in, c_out), stride in zip(pairwise(channels), (1, 2, 2), strict=True):
        total += 9 * c_in * c_out + 9 * c_out * c_out + 4 * c_out  # first block: two convs, two BNs
        if stride != 1 or c_in != c_out:
            total += c_in * c_out + 2 * c_out  # projection shortcut
        total += (blocks - 1) * (18 * c_out * c_out + 4 * c_out)
    return total + (channels[-1] + 1) * classes  # linear head


def wrn_count(depth: int, k: int, in_channels: int = 3, classes: int = 100) -> int:
    """Parameters of WRN-depth-k by hand: pre-activation blocks (BN on the block's input), bias-free 1x1 shortcuts."""
    blocks = (depth - 4) // 6
    channels = (16, 16 * k, 32 * k, 64 * k)
    total = 9 * in_channels * 16
    for (c_in, c_out), stride in zip(pairwise(channels), (1, 2, 2), strict=True):
        total += 2 * c_in + 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out  # BN, conv, BN, conv
        if stride != 1 or c_in != c_out:
            total += c_in * c_out
        total += (blocks - 1) * (4 * c_out + 18 * c_out * c_out)
    return total + 2 * channels[-1] + (channels[-1] + 1) * classes  # final BN + linear head


# CIFAR-100 parameter counts derived by hand from the architectures above. They round to the figures
# the distillation literature prints for the RepDistiller zoo: resnet8 0.08M, resnet20 0.28M, resnet32
# 0.47M, resnet56 0.86M, resnet8x4 1.23M, resnet32x4 7.43M, WRN-16-1 0.18M, WRN-16-2 0.70M, WRN-40-1
# 0.57M, WRN-40-2 2.26M.
EXPECTED = {
    "resnet8": (resnet_count(1, (16, 16, 32, 64)), 83_892),
    "resnet20": (resnet_count(3, (16, 16, 32, 64)), 278_324),
    "resnet32": (resnet_count(5, (16, 16, 32, 64)), 472_756),
    "resnet56": (resnet_count(9, (16, 16, 32, 64)), 861_620),
    "resnet8x4": (resnet_count(1, (32, 64, 128, 256)), 1_233_540),
    "resnet32x4": (resnet_count(5, (32, 64, 128, 256)), 7_433_860),
    "wrn_16_1": (wrn_count(16, 1), 180_916),
    "wrn_16_2": (wrn_count(16, 2), 703_284),
    "wrn_40_1": (wrn_count(40, 1), 569_780),
    "wrn_40_2": (wrn_count(40, 2), 2_255_156),
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Small convolutions run faster on one thread than on cores shared with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_zoo_is_registered() -> None:
    assert set(EXPECTED) | {"resnet", "wrn"} <= set(ZOO)
    assert set(FIXED) == set(EXPECTED)


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("shape", [CIFAR, (1, 8, 8)])
def test_model_gives_logits_stage_maps_and_pooled_features(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = MODELS.get(name)(input_shape=shape, num_classes=10, width=None, depth=None)
    out = net(torch.randn(2, *shape))
    assert isinstance(out, ModelOutput) and out.attentions is None
    assert out.logits.shape == (2, 10)
    assert list(out.features) == ["block1", "block2", "block3", "penultimate"]
    sizes = [out.features[f"block{i}"].shape for i in (1, 2, 3)]
    assert all(len(s) == 4 and s[0] == 2 for s in sizes)
    assert [s[-1] for s in sizes] == [shape[-1], shape[-1] // 2, shape[-1] // 4]  # stages 2 and 3 halve
    assert out.features["penultimate"].shape == (2, sizes[-1][1])
    out.logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_counts_match_the_architecture(name: str) -> None:
    by_hand, literal = EXPECTED[name]
    assert by_hand == literal
    assert count_parameters(MODELS.get(name)(input_shape=CIFAR, num_classes=100)) == by_hand


@pytest.mark.parametrize("name", FIXED)
@pytest.mark.parametrize("sizes", [{"width": 8}, {"depth": 2}, {"width": 8, "depth": 2}])
def test_fixed_size_variants_refuse_width_and_depth(name: str, sizes: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=f"^{name} has a fixed size; leave width and depth empty$"):
        MODELS.get(name)(input_shape=CIFAR, num_classes=10, **sizes)


@pytest.mark.parametrize("name", FIXED)
def test_a_variant_sizes_meta_is_its_place_in_the_family(name: str) -> None:
    """The advisor builds assistants from the family at a variant's (width, depth): that must be about the variant."""
    meta = MODELS.entry(name).meta
    assert meta["input_rank"] == 3 and meta["family"] in MODELS and len(set(meta["sizes"].values())) == 1
    width, depth = meta["sizes"]["medium"]
    family = count_parameters(MODELS.get(meta["family"])(input_shape=CIFAR, num_classes=100, width=width, depth=depth))
    own = EXPECTED[name][0]
    assert family == own if "x4" not in name else abs(family / own - 1) < 0.02  # x4: a 32-channel stem, not 64


@pytest.mark.parametrize(("family", "default"), [("resnet", "resnet20"), ("wrn", "wrn_16_1")])
def test_parametric_families_default_and_grow_with_their_presets(family: str, default: str) -> None:
    entry = MODELS.entry(family)
    assert not entry.meta.get("fixed_size")

    def params(**sizes: int | None) -> int:
        return count_parameters(entry.obj(input_shape=CIFAR, num_classes=100, **sizes))

    assert params() == params(width=None, depth=None) == EXPECTED[default][0]
    presets = [entry.meta["sizes"][p] for p in ("tiny", "small", "medium", "large")]
    counts = [params(width=w, depth=d) for w, d in presets]
    assert counts == sorted(counts) and len(set(counts)) == 4
    assert params(width=1, depth=1) > 0  # the advisor's width search reaches width 1


def test_parametric_wrn_depth_counts_blocks_per_stage() -> None:
    wrn = MODELS.get("wrn")
    assert count_parameters(wrn(input_shape=CIFAR, num_classes=100, width=2, depth=6)) == wrn_count(40, 2)


@pytest.mark.parametrize("depth", [4, 12, 41])
def test_wrn_rejects_depths_that_are_not_6n_plus_4(depth: int) -> None:
    with pytest.raises(ValueError, match=r"wrn depth must be 6n \+ 4 .* got " + str(depth)):
        WideResNet(CIFAR, 10, depth, 1)


# --- CIFAR loaders (never downloaded in tests) -----------------------------------------------------------

DATA_CFG = SimpleNamespace(name="cifar10", n_samples=None, val_fraction=0.2, test_fraction=0.15, split_seed=0)


@pytest.mark.parametrize(("name", "classes"), [("cifar10", 10), ("cifar100", 100)])
def test_cifar_datasets_are_registered_as_downloads(name: str, classes: int) -> None:
    meta = DATASETS.entry(name).meta
    assert meta == {"input_shape": CIFAR, "num_classes": classes, "generated": False, "modality": "image",
                    "downloads": True}


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_without_torchvision_is_a_one_line_runtime_error(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    with pytest.raises(RuntimeError) as err:
        DATASETS.get(name)(DATA_CFG)
    assert str(err.value) == (f"dataset {name} needs torchvision (pip install torchvision) and internet access "
                              "for the first download")


class FakeCIFAR:
    """Stands in for torchvision's CIFAR10 / CIFAR100: uint8 (N, 32, 32, 3) images, 10 balanced classes."""

    calls: ClassVar[list[tuple[str, bool, bool]]] = []

    def __init__(self, root: str, train: bool, download: bool) -> None:
        FakeCIFAR.calls.append((root, train, download))
        n = 200 if train else 50
        rng = np.random.default_rng(int(train))
        self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = [i % 10 for i in range(n)]


def test_cifar_splits_from_the_official_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("torchvision")
    fake.datasets = SimpleNamespace(CIFAR10=FakeCIFAR, CIFAR100=FakeCIFAR)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    FakeCIFAR.calls.clear()
    splits = DATASETS.get("cifar10")(DATA_CFG)
    assert FakeCIFAR.calls == [(str(cache_dir() / "torchvision"), True, True),
                               (str(cache_dir() / "torchvision"), False, True)]
    assert (len(splits.train), len(splits.val), len(splits.test), len(splits.test_shifted)) == (160, 40, 50, 50)
    assert torch.bincount(splits.val.y).tolist() == [4] * 10  # stratified
    assert splits.input_shape == CIFAR and splits.num_classes == 10 and splits.deterministic
    for split in (splits.train, splits.val, splits.test, splits.test_shifted):
        assert split.x.shape[1:] == CIFAR and split.x.dtype == torch.float32 and split.y.dtype == torch.int64
    assert abs(float(splits.train.x.mean())) < 0.5  # normalised per channel
    assert torch.equal(splits.test_shifted.y, splits.test.y)
    assert not torch.allclose(splits.test_shifted.x, splits.test.x)
    again = DATASETS.get("cifar10")(DATA_CFG)
    assert torch.equal(again.val.x, splits.val.x) and torch.equal(again.test_shifted.x, splits.test_shifted.x)
