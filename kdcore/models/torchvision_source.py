"""torchvision image models: ``name: torchvision`` with ``path:`` the model's name (``resnet18``, ``vit_b_16``).

``kwargs`` go to ``torchvision.models.get_model``; ``pretrained: true`` asks for its default weights (where there
is internet). The classes are the data's; torchvision models read 3-channel images, so a grayscale image is
repeated over the three. Features come from forward hooks on the submodules ``features`` names, as for
``name: import``; ``penultimate`` is, unless named, the input of the classifier (``fc``, ``classifier``,
``head`` or ``heads``, whichever the model has).
"""

from __future__ import annotations

from typing import Any

import torch

from kdcore.models.base import ModelOutput
from kdcore.models.imported import HookedModel, ModuleSourceError, one_line, require_package
from kdcore.registry import register_model

HEADS = ("fc", "classifier", "head", "heads")  # where torchvision's families keep their classifier
CHANNELS = 3


class TorchvisionModel(HookedModel):
    """A torchvision network that repeats a grayscale channel over the three it reads."""

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if x.shape[1] == 1:
            x = x.expand(-1, CHANNELS, -1, -1)  # (B, 1, H, W) -> (B, 3, H, W)
        return super().forward(x)


@register_model("torchvision", input_rank=3, inputs="tensor", fixed_size=True, source=True,
                path_pattern=r"[A-Za-z0-9][\w.-]*", path_help="name a torchvision model, e.g. resnet18")
def torchvision_model(input_shape: tuple[int, ...], num_classes: int, spec: Any) -> TorchvisionModel:
    """A torchvision image model by name (path: e.g. resnet18), with the data's classes."""
    models = require_package("torchvision.models", "torchvision", "vision")
    if input_shape[0] not in (1, CHANNELS):
        raise ModuleSourceError(f"torchvision models read {CHANNELS}-channel (or grayscale) images; the data's "
                                f"have {input_shape[0]} channels", "name")
    kwargs = dict(spec.kwargs)
    if kwargs.pop("pretrained", False):
        kwargs["weights"] = "DEFAULT"
    try:
        net = models.get_model(spec.path, **kwargs | {"num_classes": num_classes})
    except Exception as err:  # an unknown name, a keyword the model does not take, weights out of reach
        raise ModuleSourceError(f"torchvision get_model({spec.path!r}, **kwargs) failed: {one_line(err)}") from None
    modules = dict(net.named_modules())
    return TorchvisionModel(net, spec.features, next((name for name in HEADS if name in modules), None))
