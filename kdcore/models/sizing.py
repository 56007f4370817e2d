"""Parameter counts of configured models without building their weights: a 7B teacher sized on a laptop."""

from __future__ import annotations

from typing import Any

import torch

from kdcore.models.base import build_model, count_parameters
from kdcore.registry import MODELS


def count_parameters_without_weights(spec: Any, input_shape: tuple[int, ...], num_classes: int) -> int:
    """Parameters of the model a ``ModelConfig`` builds for the data, counted on the meta device.

    Every tensor is a shape without storage, so nothing is allocated, and no checkpoint or weight file is read:
    a source that registers a ``skeleton`` (hf: the Auto class from its config alone) is built through it.
    """
    entry = MODELS.entry(spec.name)
    unweighted = spec.model_copy(update={"checkpoint": None})  # the shapes are the architecture's
    with torch.device("meta"):
        if "skeleton" in entry.meta:
            model = entry.meta["skeleton"](tuple(input_shape), num_classes, unweighted)
        else:
            model = build_model(unweighted, tuple(input_shape), num_classes)
    return count_parameters(model)
