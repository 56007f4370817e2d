"""Writing a model in each export format, and checking what was written.

* ``safetensors``: the state dict of the deployed model (of the network a view or an imported module
  wraps, so the file also serves as a ``checkpoint:`` of that architecture).
* ``onnx``: ``torch.onnx.export`` of the logits with a dynamic batch axis, then checked with ONNX Runtime
  on the study's test split: the same top-1 prediction on every sample (but exact ties) and the largest
  logit difference within ONNX_TOLERANCE x max(1, largest |logit|); otherwise ExportError.
* ``hf``: ``save_pretrained`` of a Hugging Face model (``name: hf``) and of its tokenizer.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kdcore.export_error import ExportError, one_line
from kdcore.models.base import ViewModel
from kdcore.models.imported import HookedModel

FORMATS = ("safetensors", "onnx", "hf")
WEIGHT_FILES = {"safetensors": "model.safetensors", "onnx": "model.onnx"}  # hf: save_pretrained's own files
ONNX_TOLERANCE = 1e-4  # largest |ONNX Runtime - PyTorch| logit allowed, relative to max(1, largest |logit|)
ONNX_INPUT, ONNX_OUTPUT = "inputs", "logits"
CHECK_CHUNK = 512  # test samples per forward pass of the ONNX check


class Logits(nn.Module):
    """The model as a deployment runtime sees it: inputs in, logits out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


# --- safetensors ------------------------------------------------------------------------------------
def weights_module(model: nn.Module) -> nn.Module:
    """The network whose state dict is exported: the one a view model or an imported module wraps, which is
    what a ``checkpoint:`` of that architecture loads into."""
    while isinstance(model, (ViewModel, HookedModel)):
        model = model.net
    return model


def write_safetensors(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """The state dict of :func:`weights_module` of ``model`` as one safetensors file with ``metadata``."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in weights_module(model).state_dict().items()}
    save_file(state, str(path), metadata=metadata)


# --- onnx -------------------------------------------------------------------------------------------
def write_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """``torch.onnx.export`` of the logits, one file, the batch axis dynamic."""
    batch = torch.export.Dim("batch")
    with _quiet_onnx():
        torch.onnx.export(Logits(model).eval(), (example,), str(path), input_names=[ONNX_INPUT],
                          output_names=[ONNX_OUTPUT], dynamic_shapes=({0: batch},), dynamo=True,
                          external_data=False, verbose=False)


def write_checked_onnx(model: nn.Module, example: torch.Tensor, x: torch.Tensor, path: Path, spec: str
                       ) -> tuple[Any, dict[str, Any]]:
    """Write the ONNX export of ``model`` (the architecture ``spec``) to ``path`` and check it in ONNX Runtime on
    the test inputs ``x``. Returns the session and what model.json records of the export; ExportError when the
    exporter or ONNX Runtime cannot take the model, or the two disagree."""
    try:
        write_onnx(model, example, path)
    except Exception as err:  # an operator the exporter does not cover, a data-dependent shape
        raise ExportError(f"--format: torch.onnx.export cannot export {spec}: "
                          f"{one_line(err)[:300]}; allowed: safetensors") from None
    try:
        session = onnx_session(path)
        check = check_onnx(session, model, x)
    except ExportError:
        raise
    except Exception as err:  # ONNX Runtime's own errors: an operator or a shape it does not take
        raise ExportError(f"--format: ONNX Runtime cannot run the export of {spec}: "
                          f"{one_line(err)[:300]}; allowed: safetensors") from None
    return session, {"input": ONNX_INPUT, "output": ONNX_OUTPUT, "batch_axis": 0, "tolerance": ONNX_TOLERANCE,
                     "check": check}


@contextmanager
def _quiet_onnx() -> Iterator[None]:
    """The exporter's warnings and log lines (optional torchvision ops, deprecations) are not the user's."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def onnx_session(path: Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session on ``threads`` intra-op threads (sequential execution)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.inference_mode()
def torch_logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The logits of ``model`` on ``x`` in PyTorch, in chunks of CHECK_CHUNK samples."""
    return torch.cat([model(chunk).logits.float() for chunk in x.split(CHECK_CHUNK)]).numpy()


def onnx_logits(session: Any, x: torch.Tensor) -> np.ndarray:
    """The logits of an ONNX Runtime ``session`` on ``x``, in chunks of CHECK_CHUNK samples."""
    return np.concatenate([session.run([ONNX_OUTPUT], {ONNX_INPUT: chunk.numpy()})[0]
                           for chunk in x.split(CHECK_CHUNK)])


def check_onnx(session: Any, model: nn.Module, x: torch.Tensor) -> str:
    """Compare ONNX Runtime with PyTorch on ``x``; the agreement in words, or ExportError when they differ."""
    expected = torch_logits(model, x)
    got = onnx_logits(session, x)
    classes = expected.shape[-1]
    expected, got = expected.reshape(-1, classes), got.reshape(-1, classes)  # sequences: one row per position
    allowed = ONNX_TOLERANCE * max(1.0, float(np.abs(expected).max()))
    diff = float(np.abs(got - expected).max())
    top2 = np.sort(expected, axis=1)[:, -2:] if classes > 1 else np.zeros((len(expected), 2))
    tie = (top2[:, 1] - top2[:, 0]) <= 2 * allowed  # a difference within tolerance may flip an exact tie
    differ = (got.argmax(1) != expected.argmax(1)) & ~tie
    agreement = (f"{len(expected) - int(differ.sum())} of {len(expected)} test predictions; max |logit diff| "
                 f"{diff:.2g} (allowed {ONNX_TOLERANCE:g} x max(1, largest |logit|) = {allowed:.2g})")
    if differ.any() or diff > allowed:
        raise ExportError(f"--format: the ONNX export disagrees with PyTorch: ONNX Runtime matches {agreement}; "
                          "nothing was written")
    return f"ONNX Runtime matches PyTorch on {agreement}"


# --- hf ---------------------------------------------------------------------------------------------
def check_hf(model: nn.Module, role: str, spec: str) -> None:
    """Format hf takes a Hugging Face model: a wrapper whose ``.net`` has ``save_pretrained`` (``name: hf``)."""
    if not (hasattr(model, "net") and hasattr(model.net, "save_pretrained")):
        raise ExportError(f"--format: format hf needs a Hugging Face model (name hf); this {role} is {spec}; "
                          "allowed: safetensors, onnx")


def write_hf(model: nn.Module, folder: Path, role: str, spec: str) -> list[str]:
    """``save_pretrained`` of a Hugging Face model (the wrapper's ``.net``) and of its tokenizer when it loads;
    returns notes for what could not be saved."""
    check_hf(model, role, spec)
    model.net.save_pretrained(str(folder))
    source = getattr(model, "tokenizer_path", None)
    if not source:
        return ["no tokenizer saved: the model names no tokenizer_path"]
    try:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(folder))
    except Exception as err:  # a folder without tokenizer files, transformers missing: the weights still go out
        return [f"no tokenizer saved: {source} does not load as one ({one_line(err)[:200]})"]
    return []
