"""timm image models: ``name: timm`` with ``path:`` the model's name (``resnet18``, ``vit_tiny_patch16_224``).

``kwargs`` go to ``timm.create_model`` (``pretrained: true`` downloads the weights where there is internet);
the input channels and the classes are the data's. Features come from forward hooks on the submodules
``features`` names, as for ``name: import``; ``penultimate`` is, unless named, the input of the classifier the
model's pretrained config names (``fc``, ``head.fc``, ...).
"""

from __future__ import annotations

from typing import Any

from kdcore.models.imported import HookedModel, ModuleSourceError, one_line, require_package
from kdcore.registry import register_model


def classifier_of(net: Any) -> str | None:
    """The submodule timm names as the model's classifier, when the model has it."""
    config = getattr(net, "pretrained_cfg", None) or getattr(net, "default_cfg", None) or {}
    name = config.get("classifier")
    return name if isinstance(name, str) and name in dict(net.named_modules()) else None


@register_model("timm", input_rank=3, inputs="tensor", fixed_size=True, source=True,
                path_pattern=r"[A-Za-z0-9][\w.-]*", path_help="name a timm model, e.g. resnet18")
def timm_model(input_shape: tuple[int, ...], num_classes: int, spec: Any) -> HookedModel:
    """A timm image model by name (path: e.g. resnet18), sized for the data's channels and classes."""
    timm = require_package("timm", "timm", "vision")
    kwargs = dict(spec.kwargs) | {"in_chans": input_shape[0], "num_classes": num_classes}
    try:
        net = timm.create_model(spec.path, **kwargs)
    except Exception as err:  # an unknown name, a keyword the model does not take, weights out of reach
        raise ModuleSourceError(f"timm.create_model({spec.path!r}, **kwargs) failed: {one_line(err)}") from None
    return HookedModel(net, spec.features, classifier_of(net))
