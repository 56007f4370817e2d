"""Weights a model starts from: a ``.safetensors`` file or a PyTorch state dict (``.pt``, ``.pth``, ``.bin``).

A checkpoint belongs to the architecture its config names; loading is strict, and a file that does not fit
says in one line which keys are missing, which are unexpected, or which tensor has another shape. State
dicts are read with ``weights_only=True``: a checkpoint never runs code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from kdcore.config import CHECKPOINT_SUFFIXES
from kdcore.models.base import ModelSourceError, ViewModel
from kdcore.models.imported import HookedModel

__all__ = ["CHECKPOINT_SUFFIXES", "CheckpointError", "load_checkpoint", "read_state_dict"]
SHOWN_KEYS = 3  # keys named in an error before "+N more"


class CheckpointError(ModelSourceError):
    """A checkpoint that cannot be read, or does not fit its model (one line)."""

    def __init__(self, message: str) -> None:
        super().__init__("checkpoint", message)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, by name; a ``{"state_dict": ...}`` wrapper is unwrapped."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors, pickle and zip errors all mean the same to the user
        detail = " ".join(str(err).split())[:200] or type(err).__name__
        raise CheckpointError(f"{path.name} cannot be read as a checkpoint: {detail}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path.name} holds no state dict (a mapping of parameter names to tensors)")
    return state


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else "")


def load_checkpoint(model: nn.Module, path: Path, model_name: str) -> nn.Module:
    """Load ``path`` into ``model`` strictly: into the network a view model or an imported module wraps, so a
    checkpoint holds the architecture's own keys."""
    target = model
    while isinstance(target, (ViewModel, HookedModel)):
        target = target.net
    state = read_state_dict(path)
    own = target.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = ([f"missing keys {_names(missing)}"] if missing else []) + (
            [f"unexpected keys {_names(unexpected)}"] if unexpected else [])
        raise CheckpointError(f"{Path(path).name} does not fit model {model_name}: {'; '.join(parts)}")
    for key, tensor in state.items():
        if tensor.shape != own[key].shape:
            raise CheckpointError(f"{Path(path).name} does not fit model {model_name}: {key} has shape "
                                  f"{tuple(tensor.shape)}, the model's is {tuple(own[key].shape)}")
    target.load_state_dict(state)
    return model


