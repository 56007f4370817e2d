"""Any PyTorch module you write: ``name: import`` with ``path: "package.module:callable"``.

The callable builds an ``nn.Module`` from ``kwargs`` (and is given ``num_classes`` when it takes that
argument and ``kwargs`` does not set it). Its output is its logits: a tensor, the first element of a tuple
or list, a ``logits`` key of a mapping, or a ``logits`` attribute (Hugging Face outputs). Features come from
forward hooks on the submodules ``features`` names (``{penultimate: layer4, block1: layer1}``); a
``penultimate`` feature is averaged over its spatial positions into one vector per sample, as the
relation methods read it. So feature and relation methods, adapters and self-distillation's block count
work on it as on a built-in model.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from torch import nn

from kdcore.import_roots import add_import_roots
from kdcore.models.base import ModelOutput, ModelSourceError
from kdcore.registry import register_model


class ModuleSourceError(ModelSourceError):
    """A factory that cannot be imported or called, or a module that does not fit (one line)."""

    def __init__(self, message: str, field: str = "path") -> None:
        super().__init__(field, message)


def one_line(err: BaseException, limit: int = 200) -> str:
    """An exception as ``Type: message`` on one line, cut to ``limit`` characters of message."""
    return f"{type(err).__name__}: {' '.join(str(err).split())[:limit]}"


def require_package(package: str, model: str, extra: str) -> Any:
    """The optional package a model source builds with, or a one-line error (field ``name``) saying how to
    install it."""
    try:
        return importlib.import_module(package)
    except Exception as err:  # not installed, or a wheel that does not load beside this torch
        raise ModuleSourceError(f"model {model} needs {package}, which does not import here ({one_line(err, 160)}); "
                                f'pip install "kd-explorer[{extra}]"', "name") from None


def resolve_factory(path: str) -> Callable[..., Any]:
    """The callable at ``package.module:callable``, importable from the environment, the working folder (as
    ``python -m`` finds it) or the dashboard's data root."""
    add_import_roots()
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ModuleNotFoundError, or the module's own error while importing
        raise ModuleSourceError(f"cannot import module {module_name!r} ({type(err).__name__}: {err})") from None
    factory = module
    for part in name.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ModuleSourceError(f"module {module_name!r} has no {name!r}")
    if not callable(factory):
        raise ModuleSourceError(f"{path} is not callable")
    return factory


def output_logits(output: Any) -> torch.Tensor:
    """The logits of whatever a module returns (see the module docstring)."""
    if isinstance(output, ModelOutput):
        return output.logits
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping) and "logits" in output:
        return output["logits"]
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ModuleSourceError(f"the module returned {type(output).__name__}; return a tensor of logits, a tuple "
                            "whose first element is, or a mapping or object with 'logits'")


class HookedModel(nn.Module):
    """A user's module with the project's contract: :class:`ModelOutput` with named features from hooks.

    ``head`` names the classifier module of a network from a model zoo: its input is the ``penultimate``
    feature unless ``features`` names one.
    """

    def __init__(self, net: nn.Module, features: Mapping[str, str], head: str | None = None) -> None:
        super().__init__()
        self.net, self.feature_modules = net, dict(features)
        modules = dict(net.named_modules())
        for name, module_name in self.feature_modules.items():
            if module_name not in modules:
                known = ", ".join(m for m in list(modules)[1:12] if m)
                raise ModuleSourceError(f"the module has no submodule {module_name!r}; it has {known}, ...",
                                        f"features.{name}")
            modules[module_name].register_forward_hook(partial(self._capture, name))
        if head is not None and "penultimate" not in self.feature_modules:
            modules[head].register_forward_hook(partial(self._capture_input, "penultimate"))
        self._captured: dict[str, torch.Tensor] = {}

    def _feature(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """A hooked tensor as the feature ``name``: a ``penultimate`` is one vector per sample."""
        if name == "penultimate" and value.dim() > 2:
            value = value.flatten(2).mean(-1)  # (B, C, ...) -> (B, C)
        return value

    def _capture(self, name: str, module: nn.Module, inputs: Any, output: Any) -> None:
        value = output[0] if isinstance(output, (tuple, list)) else output
        self._captured[name] = self._feature(name, value)

    def _capture_input(self, name: str, module: nn.Module, inputs: Any, output: Any) -> None:
        if inputs:  # a module called with keyword arguments only shows no positional input
            self._captured[name] = self._feature(name, inputs[0])

    def forward(self, x: torch.Tensor) -> ModelOutput:
        self._captured = {}
        logits = output_logits(self.net(x))
        features, self._captured = self._captured, {}
        return ModelOutput(logits, features)


@register_model("import", input_rank=None, inputs="any", fixed_size=True, source=True,
                path_pattern=r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*",
                path_help="name the factory as package.module:callable")
def imported(input_shape: tuple[int, ...], num_classes: int, spec: Any) -> HookedModel:
    """Your own nn.Module from a factory (path: package.module:callable), features from forward hooks."""
    factory = resolve_factory(spec.path)
    kwargs = dict(spec.kwargs)
    try:
        takes = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C extension: call it with what was given
        takes = {}
    if "num_classes" in takes and "num_classes" not in kwargs:
        kwargs["num_classes"] = num_classes
    try:
        net = factory(**kwargs)
    except Exception as err:
        raise ModuleSourceError(f"{spec.path}(**kwargs) failed: {type(err).__name__}: {err}") from None
    if not isinstance(net, nn.Module):
        raise ModuleSourceError(f"{spec.path} returned {type(net).__name__}, not an nn.Module")
    return HookedModel(net, spec.features)
