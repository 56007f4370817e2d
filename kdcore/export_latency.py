"""What an exported role costs to run: the latency quoted on its model card, and the teacher's beside it.

Everything is timed on one thread (PyTorch and ONNX Runtime alike) as the median of repeated forward passes.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from kdcore.export_formats import ONNX_INPUT, ONNX_OUTPUT
from kdcore.export_roles import LoadedRole, role_builder, role_runs
from kdcore.models.base import count_parameters
from kdcore.study import deployed
from kdcore.tracking import MlflowTracker

LATENCY_BATCH = 64  # test inputs timed for the card (the exported role and the teacher on the same batch)
LATENCY_REPEATS = 15
PYTORCH_RUNTIME = f"PyTorch {torch.__version__} (1 thread)"

log = logging.getLogger(__name__)


def median_ms(run: Callable[[], object], repeats: int = LATENCY_REPEATS, warmup: int = 3) -> float:
    """Median wall time of ``run()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Time PyTorch on one thread (as ONNX Runtime is timed), and give the process its threads back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@torch.inference_mode()
def _forward(model: nn.Module, x: torch.Tensor) -> object:
    return model(x)


def pytorch_ms(model: nn.Module, batch: torch.Tensor) -> float:
    """Median ms of one PyTorch forward pass of ``model`` on ``batch`` (threads as the caller set them)."""
    return median_ms(lambda: _forward(model, batch))


def onnx_ms(session: Any, batch: torch.Tensor) -> float:
    """Median ms of one ONNX Runtime forward pass of ``session`` on ``batch``."""
    feed = {ONNX_INPUT: batch.numpy()}
    return median_ms(lambda: session.run([ONNX_OUTPUT], feed))


def onnx_runtime() -> str:
    """The ONNX Runtime a latency was measured in, as the card names it."""
    import onnxruntime

    return f"ONNX Runtime {onnxruntime.__version__} (1 thread)"


def teacher_timing(tracker: MlflowTracker, loaded: LoadedRole, batch: torch.Tensor
                   ) -> tuple[str | None, float | None, int | None]:
    """The teacher's PyTorch latency on the same batch and its parameter count; Nones when the study has none.
    Its architecture is built fresh (latency does not depend on the values of the weights)."""
    runs = role_runs(tracker, loaded.study_id)
    if "teacher" not in runs:
        return None, None, None
    cfg = loaded.cfg
    plain = cfg.model_copy(update={"teacher": cfg.teacher.model_copy(update={"checkpoint": None})})
    try:
        teacher = deployed(role_builder(plain, "teacher", runs["teacher"].tags.get("kd.view") or None)()).eval()
    except Exception as err:  # a model source that cannot be built here any more
        log.warning("study %s: the teacher cannot be built for timing: %s", loaded.study_id, err)
        return None, None, None
    with one_torch_thread():
        latency = pytorch_ms(teacher, batch)
    return PYTORCH_RUNTIME, latency, count_parameters(teacher)
