"""The one training loop, for every role and every method.

It sums the method's weighted losses, steps the optimizer, evaluates on the validation split
each epoch (model selection never looks at the test split), writes checkpoints and stops on a
non-finite loss. It never branches on a method's name.

A step never waits for the device: batch positions go to the device once per epoch, and the loss sums,
accuracy counts and the non-finite flags stay there until the epoch's end, where they are read at once.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from kdcore import targets
from kdcore.data.splits import DatasetSplits, Split
from kdcore.methods.base import Batch, Method
from kdcore.models.ensemble import members as ensemble_members

EVAL_BATCH = 1024
DEVICE_SHARE = 0.25  # a teacher cache takes at most this share of a GPU's free memory; training needs the rest
GIB = 1 << 30


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the message says which, when and what to try."""


class CheckpointMismatch(ValueError):
    """A checkpoint file was written for another study config or role; it is never adopted."""


@dataclass(frozen=True)
class EpochReport:
    role: str
    epoch: int  # 0-based
    epochs: int
    metrics: dict[str, float]  # the student's
    peers: dict[str, dict[str, float]] = field(default_factory=dict)  # co-trained peers' metrics, by role


EpochCallback = Callable[[EpochReport], None]


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    best_val_acc: float
    epochs_run: int  # epochs trained in this call (fewer than planned after a resume)


# --- device and determinism -------------------------------------------------------------------
def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device: {name} requested but torch sees no CUDA device; allowed: auto, cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"train.device: {name} does not exist; torch sees {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("train.device: mps requested but not available; allowed: auto, cpu")
    return device


def set_determinism(seed: int, threads: int, device: torch.device | None = None) -> None:
    """Same seed and thread count -> bit-identical results on the same machine and device.

    CPU kernels are deterministic at a fixed thread count already. Only an accelerator switches torch to its
    deterministic kernels, a switch that also imports torch's compiler stack (seconds of start-up a CPU run
    would pay for nothing).
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    if device is not None and device.type != "cpu" and not torch.are_deterministic_algorithms_enabled():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def autocast_for(device: torch.device, amp: bool) -> tuple[Callable[[], Any], torch.amp.GradScaler | None]:
    """Mixed precision on CUDA only: bfloat16 where supported, else float16 with a grad scaler."""
    if not (amp and device.type == "cuda"):
        return nullcontext, None
    if torch.cuda.is_bf16_supported():
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16), None
    return lambda: torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


# --- compilation, memory format, teacher caches -------------------------------------------------------
def compile_problem(device: torch.device) -> str:
    """Why ``torch.compile`` cannot build kernels for ``device`` on this machine ('' when it can): its inductor
    backend compiles C++ for the CPU (a compiler on PATH, or named by $CXX) and Triton kernels for CUDA."""
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "torch.compile needs triton for CUDA, which is not installed"
    if device.type == "cpu":
        default = "cl" if sys.platform == "win32" else "clang++" if sys.platform == "darwin" else "g++"
        compiler = os.environ.get("CXX") or default
        if shutil.which(compiler) is None:
            return (f"torch.compile builds C++ kernels for the CPU and finds no compiler ({compiler}); install one "
                    "or name it in $CXX")
    return ""


def compile_forward(models: Sequence[nn.Module]) -> Callable[[], None]:
    """``torch.compile`` each model's forward in place (its state_dict keys stay as they are) and return the undo,
    which puts the plain forward back, so evaluation and latency measure the model as it is deployed. The compiled
    forward is kept on the model: a later fit of the same model reuses its compiled code."""
    for model in models:
        compiled = model.__dict__.get("_compiled_forward")
        if compiled is None:
            compiled = model.__dict__["_compiled_forward"] = torch.compile(model.forward)
        model.__dict__["forward"] = compiled

    def undo() -> None:
        for model in models:
            model.__dict__.pop("forward", None)

    return undo


def channels_last(setting: bool | None, device: torch.device, shape: Sequence[int]) -> bool:
    """Whether a fit keeps its image inputs (of ``shape``, batch first) and weights channels_last: as set
    (``train.channels_last``), else on CUDA only; never for inputs that are not 4-d images."""
    return len(shape) == 4 and (device.type == "cuda" if setting is None else setting)


def size_text(nbytes: float) -> str:
    """``0.12 GiB``, or MiB below a hundredth of a GiB."""
    return f"{nbytes / GIB:.2f} GiB" if nbytes >= GIB / 100 else f"{nbytes / (1 << 20):.2f} MiB"


def cache_home(device: torch.device, nbytes: int) -> tuple[torch.device, str]:
    """Where a teacher cache of ``nbytes`` lives when training on ``device``, and why, as a short note.

    On the training device when it fits there (a CUDA cache may take ``DEVICE_SHARE`` of the free memory;
    a CPU run's cache is on the CPU), else in CPU memory, from where each batch's rows are copied to the device.
    """
    if device.type != "cuda":
        return device, f"device ({device.type}, {size_text(nbytes)})"
    free, _ = torch.cuda.mem_get_info(device)
    if nbytes <= DEVICE_SHARE * free:
        return device, f"device ({device}, {size_text(nbytes)})"
    return torch.device("cpu"), (f"cpu ({size_text(nbytes)}; {device} has {size_text(free)} free and a cache takes "
                                 f"at most {DEVICE_SHARE:.0%} of it)")


# --- evaluation -----------------------------------------------------------------------------------
@torch.inference_mode()
def predict_outputs(model: nn.Module, x: torch.Tensor, device: torch.device, amp: bool = False,
                    keys: frozenset[str] | set[str] = frozenset({"logits"}),
                    to: torch.device | None = None) -> dict[str, torch.Tensor]:
    """``logits`` and/or named features of ``model`` (in eval mode) on ``x``, batched, float32.

    The model runs on ``device``; the outputs are gathered on ``to`` (default: ``device``), chunk by chunk, so
    outputs bound for the CPU never need room on the device all at once.
    """
    was_training = model.training
    model.eval()
    autocast, _ = autocast_for(device, amp)
    chunks: dict[str, list[torch.Tensor]] = {key: [] for key in keys}
    for start in range(0, len(x), EVAL_BATCH):
        with autocast():
            out = model(x[start:start + EVAL_BATCH].to(device))
        for key in keys:
            chunks[key].append((out.logits if key == "logits" else out.features[key]).float().to(to or device))
    model.train(was_training)
    return {key: torch.cat(parts) for key, parts in chunks.items()}


def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device, amp: bool = False) -> torch.Tensor:
    """Logits of ``model`` (in eval mode) on ``x``, batched, as float32 on ``device``."""
    return predict_outputs(model, x, device, amp)["logits"]


def predict_probs(model: nn.Module, split: Split, device: torch.device, amp: bool = False) -> torch.Tensor:
    """Softmax probabilities on a split's scored rows (samples, or scored positions), on the CPU, for the metrics."""
    logits = predict_logits(model, split.x, device, amp).cpu()
    return targets.scored(logits, split.y)[0].softmax(-1)


# --- training -------------------------------------------------------------------------------------
def build_optimizer(params: Iterator[nn.Parameter], cfg: Any) -> torch.optim.Optimizer:
    """The configured optimizer, fused into one kernel per step (CPU and CUDA both support it)."""
    params = list(params)
    if cfg.optimizer == "sgd":
        # Nesterov needs momentum; with momentum 0 it is plain SGD.
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.momentum > 0, fused=True)
    optimizer = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return optimizer(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def build_schedule(optimizer: torch.optim.Optimizer, cfg: Any, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _epoch: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 0.5 * (1 + math.cos(math.pi * e / epochs)))


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """Shuffled index batches (on the CPU), a pure function of (seed, epoch) so a resumed run sees the same order.

    A final batch of one sample is dropped: batch norm cannot train on it.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    if n % batch_size == 1:
        perm = perm[:-1]
    return list(perm.split(batch_size))


def device_batches(host: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    """The epoch's index batches on ``device``: the whole order copied once (without waiting, through pinned
    memory, on CUDA), then split there."""
    order = torch.cat(host)
    if device.type == "cuda":
        order = order.pin_memory()
    return order.to(device, non_blocking=True).split([len(index) for index in host])


@dataclass(frozen=True)
class CheckpointPolicy:
    """When a fit rewrites its checkpoint: every ``every_epochs`` epochs when set, else once ``every_s`` seconds
    have passed since the last save (0 = after every epoch); always after the last epoch. A resume repeats at
    most one interval of training."""

    every_s: float = 0.0
    every_epochs: int | None = None

    @classmethod
    def of(cls, cfg: Any) -> CheckpointPolicy:
        """The policy of a training config (``train.checkpoint_every_s``, ``train.checkpoint_every_epochs``)."""
        return cls(cfg.checkpoint_every_s, cfg.checkpoint_every_epochs)

    def due(self, epochs_done: int, epochs: int, since_save_s: float) -> bool:
        """Whether to save after ``epochs_done`` of ``epochs``, ``since_save_s`` seconds after the last save."""
        if epochs_done == epochs:
            return True
        if self.every_epochs is not None:
            return epochs_done % self.every_epochs == 0
        return since_save_s >= self.every_s


class NonFinite:
    """Which loss terms went NaN or infinite first in an epoch, tracked on the device without a sync.

    ``flags`` holds one flag per term plus one for the total, set from the first batch where any went non-finite
    (later batches, trained on broken weights, would flag every term); ``value`` is that batch's total loss.
    """

    def __init__(self, device: torch.device) -> None:
        self.flags = torch.zeros((), dtype=torch.bool, device=device)
        self.value = torch.zeros((), device=device)

    def update(self, terms: torch.Tensor, loss: torch.Tensor) -> None:
        bad = torch.cat([~torch.isfinite(terms), ~torch.isfinite(loss).view(1)])
        first = bad.any() & ~self.flags.any()
        self.flags = torch.where(first, bad, self.flags)
        self.value = torch.where(first, loss.detach(), self.value)

    def packed(self, terms: int) -> torch.Tensor:
        """The flags (``terms`` + 1 of them) and the value as floats, to read with the epoch's other numbers."""
        return torch.cat([self.flags.expand(terms + 1).float(), self.value.view(1)])

    @staticmethod
    def error(read: list[float], names: list[str], role: str, epoch: int, lr: float) -> NonFiniteLossError | None:
        """The error for an epoch whose ``packed`` numbers are ``read``; None when every loss stayed finite."""
        flags, value = read[:-1], read[-1]
        if not any(flags):
            return None
        bad = [name for name, flag in zip(names, flags, strict=False) if flag]
        return NonFiniteLossError(f"{role}: loss {', '.join(bad) or 'total'} became {value} in epoch {epoch + 1}; "
                                  f"try a lower train.lr (now {lr}) or distill.temperature")


def fit(
    method: Method,
    splits: DatasetSplits,
    cfg: Any,
    *,
    role: str,
    epochs: int,
    device: torch.device,
    callbacks: Sequence[EpochCallback] = (),
    checkpoint: Path | None = None,
    checkpoint_owner: str = "",
    checkpoint_policy: CheckpointPolicy = CheckpointPolicy(),
    before_checkpoint: Callable[[], None] | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``method`` for ``epochs`` on ``splits.train``; leave its student at the best val epoch.

    With ``checkpoint`` set, state is saved there after an epoch's callbacks have run, as ``checkpoint_policy``
    says (by default after every epoch; a study passes its config's), and, if the file already exists, training
    resumes from it. ``before_checkpoint`` runs first (the study flushes the epochs' metrics, so a checkpoint
    never gets ahead of the logged curves). ``checkpoint_owner`` is stored in the file and must match
    to resume from it: a checkpoint of another config or role raises CheckpointMismatch.

    ``cfg.compile`` compiles the trained models' forward (and a live teacher's) for this fit;
    ``cfg.channels_last`` keeps image inputs and weights channels_last (see :func:`channels_last`).
    A loss that goes NaN or infinite raises NonFiniteLossError at the end of its epoch.
    """
    if cfg.compile and (problem := compile_problem(device)):
        raise ValueError(f"train.compile: {problem}; or set train.compile=false")
    method.to(device)
    x_train, y_train = splits.train.x, splits.train.y.to(device)
    memory = torch.channels_last if channels_last(cfg.channels_last, device, x_train.shape) else None
    if memory is not None:
        method.to(memory_format=memory)
        if isinstance(x_train, torch.Tensor):  # converted on the CPU, so the device never holds two copies
            x_train = x_train.contiguous(memory_format=memory)
    x_train = x_train.to(device)  # a tensor, or streamed inputs that read each batch's rows (CPU positions)
    streamed = not isinstance(x_train, torch.Tensor)
    params = list(method.trainable_parameters())
    optimizer = build_optimizer(iter(params), cfg)
    schedule = build_schedule(optimizer, cfg, epochs)
    autocast, scaler = autocast_for(device, cfg.amp)
    members = {role: method.student, **method.peers()}  # every model this loop trains and selects
    start_epoch = 0
    best = {name: Best() for name in members}

    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state.get("owner", "") != checkpoint_owner:
            raise CheckpointMismatch(
                f"checkpoint {checkpoint} was written by another config or role ({state.get('owner') or 'unknown'}, "
                f"expected {checkpoint_owner or 'unknown'}); it is not used: delete it to train {role} afresh")
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng(state.get("rng", {}), device)
        start_epoch = state["epoch"]
        best = {name: Best(*saved) for name, saved in state["best"].items()}

    uncompile = None
    if cfg.compile:
        trained = [part for model in members.values() for part in ensemble_members(model)]
        uncompile = compile_forward(trained + [source.model for source in method.teacher_sources()])
    saved_at = time.monotonic()
    bar = tqdm(total=epochs, initial=start_epoch, desc=f"{role:>9}", unit="ep", disable=not progress,
               dynamic_ncols=True, leave=True)
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        method.train()
        method.begin_epoch(epoch)
        names: list[str] = []
        sums = torch.zeros((), device=device)  # per-term loss sums, weighted by batch size
        non_finite = NonFinite(device)
        correct = {name: torch.zeros((), device=device, dtype=torch.long) for name in members}
        seen = scored = 0  # samples (for the losses) and scored units (for the accuracy)
        host_order = batch_order(len(y_train), cfg.batch_size, cfg.seed, epoch)
        for index, host_index in zip(device_batches(host_order, device), host_order, strict=True):
            rows = x_train[host_index if streamed else index]
            x = rows if splits.augment is None else splits.augment(rows)
            if memory is not None:
                x = x.contiguous(memory_format=memory)
            batch = Batch(x, y_train[index], index, host_index)
            with autocast():
                out = method.step(batch)
            names = list(out.losses)
            terms = torch.stack([v.float() for v in out.losses.values()])  # (n_terms,)
            loss = terms.sum()
            non_finite.update(terms.detach(), loss)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            sums = sums + terms.detach() * len(index)
            for name, logits in {role: out.logits, **out.peer_logits}.items():
                hits = targets.correct(logits, batch.y, splits.exact_match)
                correct[name] += hits.sum()
            scored += len(hits)
            seen += len(index)
        lr = optimizer.param_groups[0]["lr"]
        schedule.step()

        read = torch.cat([sums / seen, non_finite.packed(len(names))]).tolist()  # the epoch's one read
        error = NonFinite.error(read[len(names):], names, role, epoch, cfg.lr)
        if error is not None:
            raise error
        losses = dict(zip(names, read[:len(names)], strict=True))
        reports: dict[str, dict[str, float]] = {}
        for name, model in members.items():
            own = {key.partition("/")[2] if name != role else key: value for key, value in losses.items()
                   if (key.startswith(f"{name}/") if name != role else "/" not in key)}
            metrics = {f"train/loss_{key}": value for key, value in own.items()}
            metrics["train/loss"] = sum(metrics.values())
            val_logits = predict_logits(model, splits.val.x, device, cfg.amp)
            y_val = splits.val.y.to(device)
            val_acc = targets.correct(val_logits, y_val, splits.exact_match).float().mean().item()
            metrics |= {"train/acc": correct[name].item() / max(scored, 1), "train/lr": lr, "val/acc": val_acc,
                        "val/loss": targets.cross_entropy(val_logits, y_val).item(),
                        "time/epoch_s": time.perf_counter() - started}
            if val_acc > best[name].val_acc:
                best[name] = Best(epoch, val_acc, {k: v.detach().clone() for k, v in model.state_dict().items()})
            reports[name] = metrics
        report = EpochReport(role, epoch, epochs, reports.pop(role), reports)
        for callback in callbacks:
            callback(report)
        if checkpoint is not None and checkpoint_policy.due(epoch + 1, epochs, time.monotonic() - saved_at):
            if before_checkpoint is not None:
                before_checkpoint()
            _save_atomic(checkpoint, {
                "owner": checkpoint_owner, "epoch": epoch + 1, "method": method.state_dict(),
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict() if scaler else {}, "rng": _get_rng(device),
                "best": {name: (b.epoch, b.val_acc, b.state) for name, b in best.items()},
            })
            saved_at = time.monotonic()
        bar.set_postfix(loss=f"{report.metrics['train/loss']:.3f}", val_acc=f"{report.metrics['val/acc']:.3f}")
        bar.update(1)
    bar.close()
    if uncompile is not None:
        uncompile()
    for name, model in members.items():  # each member leaves at its own best validation epoch
        if best[name].state is not None:
            model.load_state_dict(best[name].state)
    return FitResult(best[role].epoch, best[role].val_acc, epochs - start_epoch)


def _get_rng(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's random state on the CPU and ``device`` (augmentation draws from it), so that a resumed fit
    continues the draws of the fit it resumes."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def _set_rng(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore what :func:`_get_rng` saved (a checkpoint written before it existed holds none)."""
    if "cpu" in state:
        torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    if "mps" in state and device.type == "mps":
        torch.mps.set_rng_state(state["mps"].cpu())


@dataclass
class Best:
    """A member's best validation epoch so far and its weights then."""

    epoch: int = -1
    val_acc: float = -1.0
    state: dict[str, torch.Tensor] | None = None


def _save_atomic(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file of its own (two writers never share one), then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
