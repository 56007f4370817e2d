"""The one training loop, for every role and every method.

It sums the method's weighted losses, steps the optimizer, evaluates on the validation split
each epoch (model selection never looks at the test split), writes checkpoints and stops on a
non-finite loss. It never branches on a method's name.
"""

from __future__ import annotations

import math
import os
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

EVAL_BATCH = 1024


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


# --- evaluation -----------------------------------------------------------------------------------
@torch.inference_mode()
def predict_outputs(model: nn.Module, x: torch.Tensor, device: torch.device, amp: bool = False,
                    keys: frozenset[str] | set[str] = frozenset({"logits"})) -> dict[str, torch.Tensor]:
    """``logits`` and/or named features of ``model`` (in eval mode) on ``x``, batched, float32 on ``device``."""
    was_training = model.training
    model.eval()
    autocast, _ = autocast_for(device, amp)
    chunks: dict[str, list[torch.Tensor]] = {key: [] for key in keys}
    for start in range(0, len(x), EVAL_BATCH):
        with autocast():
            out = model(x[start:start + EVAL_BATCH].to(device))
        for key in keys:
            chunks[key].append((out.logits if key == "logits" else out.features[key]).float())
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
    """Shuffled index batches, a pure function of (seed, epoch) so a resumed run sees the same order.

    A final batch of one sample is dropped: batch norm cannot train on it.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    if n % batch_size == 1:
        perm = perm[:-1]
    return list(perm.split(batch_size))


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
    checkpoint_seconds: float = 0.0,
    before_checkpoint: Callable[[], None] | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``method`` for ``epochs`` on ``splits.train``; leave its student at the best val epoch.

    With ``checkpoint`` set, state is saved there after an epoch's callbacks have run (at most every
    ``checkpoint_seconds``, and after the last epoch) and, if the file already exists, training resumes
    from it. ``before_checkpoint`` runs first (the study flushes the epochs' metrics, so a checkpoint
    never gets ahead of the logged curves). ``checkpoint_owner`` is stored in the file and must match
    to resume from it: a checkpoint of another config or role raises CheckpointMismatch.
    """
    method.to(device)
    params = list(method.trainable_parameters())
    optimizer = build_optimizer(iter(params), cfg)
    schedule = build_schedule(optimizer, cfg, epochs)
    autocast, scaler = autocast_for(device, cfg.amp)
    x_train, y_train = splits.train.x.to(device), splits.train.y.to(device)
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
        start_epoch = state["epoch"]
        best = {name: Best(*saved) for name, saved in state["best"].items()}

    saved_at = time.monotonic()
    bar = tqdm(total=epochs, initial=start_epoch, desc=f"{role:>9}", unit="ep", disable=not progress,
               dynamic_ncols=True, leave=True)
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        method.train()
        method.begin_epoch(epoch)
        names: list[str] = []
        sums = torch.zeros((), device=device)  # per-term loss sums, weighted by batch size
        correct = {name: torch.zeros((), device=device, dtype=torch.long) for name in members}
        seen = scored = 0  # samples (for the losses) and scored units (for the accuracy)
        for index in batch_order(len(y_train), cfg.batch_size, cfg.seed, epoch):
            index = index.to(device)
            x = x_train[index] if splits.augment is None else splits.augment(x_train[index])
            batch = Batch(x, y_train[index], index)
            with autocast():
                out = method.step(batch)
            names = list(out.losses)
            terms = torch.stack([v.float() for v in out.losses.values()])  # (n_terms,)
            loss = terms.sum()
            if not torch.isfinite(loss):
                bad = [k for k, v in out.losses.items() if not torch.isfinite(v)]
                raise NonFiniteLossError(
                    f"{role}: loss {', '.join(bad) or 'total'} became {loss.item()} in epoch {epoch + 1}; "
                    f"try a lower train.lr (now {cfg.lr}) or distill.temperature"
                )
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

        losses = dict(zip(names, (sums / seen).tolist(), strict=True))
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
        last = epoch + 1 == epochs
        if checkpoint is not None and (last or time.monotonic() - saved_at >= checkpoint_seconds):
            if before_checkpoint is not None:
                before_checkpoint()
            _save_atomic(checkpoint, {
                "owner": checkpoint_owner, "epoch": epoch + 1, "method": method.state_dict(),
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict() if scaler else {},
                "best": {name: (b.epoch, b.val_acc, b.state) for name, b in best.items()},
            })
            saved_at = time.monotonic()
        bar.set_postfix(loss=f"{report.metrics['train/loss']:.3f}", val_acc=f"{report.metrics['val/acc']:.3f}")
        bar.update(1)
    bar.close()
    for name, model in members.items():  # each member leaves at its own best validation epoch
        if best[name].state is not None:
            model.load_state_dict(best[name].state)
    return FitResult(best[role].epoch, best[role].val_acc, epochs - start_epoch)


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
