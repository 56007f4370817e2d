"""The model contract: logits plus named intermediate features, built through the registry."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kdcore.registry import MODELS


@dataclass
class ModelOutput:
    """What every model returns.

    ``features`` uses stable names (``block1`` ... ``blockN``, ``penultimate``) so feature- and
    relation-based methods can say what they read without knowing the architecture. A model that attends
    returns both ``attentions`` (probabilities, what is logged and drawn) and ``attention_logits`` (the
    pre-softmax scores they come from, -inf at masked keys), so a loss can take exact log-probabilities with
    log_softmax where a probability would underflow.
    """

    logits: torch.Tensor  # (B, K)
    features: dict[str, torch.Tensor]
    attentions: list[torch.Tensor] | None = None  # per layer (B, H, T, T), rows sum to 1
    attention_logits: list[torch.Tensor] | None = None  # per layer (B, H, T, T), softmax(-1) gives attentions


class BlockNet(nn.Module):
    """A model as ``stem -> blocks -> neck -> head``: the one forward that names the features.

    Every family fills ``stem`` (input to the first block), ``blocks`` (the stages whose outputs are
    ``block1`` ... ``blockN``), ``neck`` (last block -> the penultimate vector) and ``head``. Sharing the
    forward lets self-distillation cut the network after any block (:class:`ExitNet`).
    """

    stem: nn.Module
    blocks: nn.ModuleList
    neck: nn.Module
    head: nn.Module

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.stem(x)
        features: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.blocks, start=1):
            h = block(h)
            features[f"block{i}"] = h
        z = self.neck(h)  # (B, D)
        features["penultimate"] = z
        return ModelOutput(self.head(z), features)


class ExitNet(nn.Module):
    """The first ``len(blocks)`` blocks of a :class:`BlockNet` and a classifier on the last of them.

    It shares its modules with the full network, so it is the deployed early exit: its parameters,
    latency and accuracy are those of the truncated model alone.
    """

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], classifier: nn.Module) -> None:
        super().__init__()
        self.stem, self.blocks, self.classifier = stem, nn.ModuleList(blocks), classifier

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.stem(x)
        features: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.blocks, start=1):
            h = block(h)
            features[f"block{i}"] = h
        features["penultimate"] = h.flatten(1) if h.dim() == 2 else h.flatten(2).mean(-1)
        return ModelOutput(self.classifier(h), features)


class ViewModel(nn.Module):
    """A model that sees one view of paired multi-view inputs: channels ``start:stop`` (e.g. depth of RGB-D).

    Every role of a study gets the same inputs, so a cross-modal teacher and student can read the two
    views of the same sample; the wrapped network is built for the view's own shape.
    """

    def __init__(self, net: nn.Module, view: str, channels: tuple[int, int]) -> None:
        super().__init__()
        self.net, self.view, self.channels = net, view, tuple(channels)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        start, stop = self.channels
        return self.net(x[:, start:stop])


class ModelSourceError(ValueError):
    """A model from outside (a checkpoint, a module to import) that cannot be built, in one line; ``field`` is
    the model's config key it comes from (``checkpoint``, ``path``, ``features.<name>``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def build_model(cfg: object, input_shape: tuple[int, ...], num_classes: int,
                view: tuple[str, tuple[int, int]] | None = None) -> nn.Module:
    """Instantiate the registered model named by a ``ModelConfig``, from its checkpoint where it names one;
    ``view`` = (name, channel range) wraps it in a :class:`ViewModel` that reads only those channels."""
    entry = MODELS.entry(cfg.name)  # type: ignore[attr-defined]
    sizes: dict[str, object] = {key: value for key in ("width", "depth")
                                if (value := getattr(cfg, key, None)) is not None}
    if entry.meta.get("source"):  # a model from outside (import): built from the whole spec
        sizes = {"spec": cfg}
    builder = entry.obj
    if view is not None:
        name, (start, stop) = view
        shape = (stop - start, *tuple(input_shape)[1:])
        model: nn.Module = ViewModel(builder(input_shape=shape, num_classes=num_classes, **sizes), name, (start, stop))
    else:
        model = builder(input_shape=tuple(input_shape), num_classes=num_classes, **sizes)  # empty: the default
    checkpoint = getattr(cfg, "checkpoint", None)
    if checkpoint:
        from kdcore.models.checkpoint import load_checkpoint  # it reads this module's ViewModel

        load_checkpoint(model, checkpoint, cfg.name)  # type: ignore[attr-defined]
    return model


def probe_inputs(meta: dict, batch: int = 2) -> torch.Tensor:
    """Zero inputs of a dataset's shape and kind (token ids or numbers), for a shape-finding forward pass."""
    dtype = torch.long if meta.get("inputs") == "tokens" or meta.get("targets") == "tokens" else torch.float32
    return torch.zeros(batch, *meta["input_shape"], dtype=dtype)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
