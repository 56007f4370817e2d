"""Training throughput of kdcore's engine against a minimal hand-written PyTorch loop on one device (a GPU).

The CIFAR pair of the distillation literature, resnet32x4 -> resnet8x4 (kdcore's registered names), on
CIFAR-sized synthetic data made in memory (3x32x32, 10 classes, 50,000 training samples, seeded; nothing is
downloaded). The teacher keeps its initial weights (its batch-norm statistics are set on a few batches so its
outputs are in range): throughput does not depend on its accuracy. Prints kdcore / hand-written throughput
for each variant (target >= 0.95 for every one):

  none          plain cross-entropy (kdcore's baseline method ``none``)
  kd            KD (Hinton et al. 2015), the teacher run each step
  kd_cached     KD from the teacher's outputs cached on the training split (as a study caches them); the
                cache is built outside the timed training, and its build is timed on its own:
  cache_build   kdcore's ``predict_outputs`` against a hand-written batched teacher pass
  fitnet        FitNets hints on the penultimate features (kdcore's default layer), the teacher run each step

and, with ``--compile``, each again under ``torch.compile`` (``+compile``): kdcore through ``train.compile``,
the hand-written loop compiling the student and the live teacher. Where ``TrainConfig`` has no ``compile``
field, only the hand-written compiled loop runs, and the script says so.

Both loops train the same student from the same initial weights on the same data, with the same optimizer
(fused SGD, Nesterov momentum), loss, batch size and precision (bfloat16 autocast on CUDA, as kdcore uses),
in the memory format kdcore uses (channels_last images and weights where ``train.channels_last`` says so, by
default on CUDA; the hand-written loop converts its teacher too, as one would by hand), under the determinism
settings a study sets. Each validates once per epoch on a held-out split (a tenth of the training size).
kdcore's time includes what its ``fit`` does besides (moving the data to the device, per-step loss
bookkeeping and finiteness check, keeping the best weights); no checkpoint file is written. Warm-up turns on a
few batches (every batch shape a timed turn meets, so compilation happens there) are not timed; on CUDA the
clock is read after a synchronize. Variants run in alternating turns (kdcore first in odd rounds, the
hand-written loop in even ones); a ratio is taken within each round, then the median over rounds, because the
machine may be shared and noisy.

    python benchmarks/bench_gpu.py [--device auto|cuda|cpu] [--samples 50000] [--rounds 3] [--epochs 1]
                                   [--batch-size 128] [--threads 1] [--compile] [--smoke]

The defaults are sized for under 5 minutes on one GPU, ``--compile`` (and its compilation) included; the last
line says how long it took. ``--smoke`` runs every eager variant's code path on the CPU, on 128 8x8
images, in seconds: that it runs, not how fast (``--smoke --compile`` adds the compiled ones, minutes on a CPU).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kdcore.config import ExperimentConfig, TrainConfig, load_config
from kdcore.data.splits import DatasetSplits, Split
from kdcore.engine import fit, predict_outputs, resolve_device, set_determinism
from kdcore.methods.base import Method, TeacherSource, build_method
from kdcore.models.base import build_model

TEACHER, STUDENT = "resnet32x4", "resnet8x4"
METHODS = {"none": ("none", False), "kd": ("kd", False), "kd_cached": ("kd", True), "fitnet": ("fitnet", False)}
TARGET = 0.95
CHUNK = 1024  # rows per forward pass when evaluating or building a cache (kdcore's EVAL_BATCH)
HAS_COMPILE = "compile" in TrainConfig.model_fields  # train.compile, where this kdcore has it


# --- data, models, configs -------------------------------------------------------------------------
def synthetic_splits(samples: int, side: int, seed: int) -> DatasetSplits:
    """``samples`` training and ``samples // 10`` validation images (3, side, side), class-dependent noise."""
    g = torch.Generator().manual_seed(seed)
    n_val = max(samples // 10, 16)
    prototypes = torch.randn(10, 3, side, side, generator=g)
    y = torch.randint(0, 10, (samples + n_val,), generator=g)
    x = torch.randn(samples + n_val, 3, side, side, generator=g).add_(prototypes[y], alpha=0.5)  # (N, 3, H, W)
    train, val = Split(x[:samples], y[:samples]), Split(x[samples:], y[samples:])
    return DatasetSplits("synthetic", train, val, val, val, num_classes=10, input_shape=(3, side, side),
                         shift="none")


def config(method: str, args: argparse.Namespace, compiled: bool) -> ExperimentConfig:
    """The study config the variant would have: the CIFAR pair, SGD as in RepDistiller, a constant rate."""
    overrides = [
        "data.name=cifar10", f"teacher.name={TEACHER}", f"student.name={STUDENT}", f"distill.method={method}",
        f"train.batch_size={args.batch_size}", "train.optimizer=sgd", "train.lr=0.05", "train.momentum=0.9",
        "train.weight_decay=0.0005", "train.schedule=constant", "train.amp=true", f"train.threads={args.threads}",
        f"train.device={args.device}",
    ]
    if HAS_COMPILE:
        overrides.append(f"train.compile={str(compiled).lower()}")
    return load_config(None, overrides)


def calibrated_teacher(cfg: ExperimentConfig, splits: DatasetSplits, device: torch.device) -> nn.Module:
    """The untrained teacher with batch-norm statistics from a few training batches, frozen in eval mode."""
    teacher = build_model(cfg.teacher, splits.input_shape, splits.num_classes).to(device).train()
    with torch.no_grad():
        for chunk in splits.train.x[:8 * cfg.train.batch_size].split(cfg.train.batch_size):
            teacher(chunk.to(device))
    return teacher.eval().requires_grad_(False)


def channels_last(cfg: ExperimentConfig, device: torch.device) -> bool:
    """Whether kdcore keeps images and weights channels_last in this fit (``train.channels_last``, empty = on
    CUDA), so the hand-written loop does too; never where this kdcore has no such field."""
    if "channels_last" not in TrainConfig.model_fields:
        return False
    setting = cfg.train.channels_last
    return device.type == "cuda" if setting is None else bool(setting)


def sync(device: torch.device) -> None:
    """Wait for queued device work, so the clock reads what ran."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def subset(splits: DatasetSplits, n: int) -> DatasetSplits:
    """The first ``n`` training samples and the whole validation split (a warm-up turn)."""
    train = Split(splits.train.x[:n], splits.train.y[:n])
    return DatasetSplits(splits.name, train, splits.val, splits.test, splits.test_shifted, splits.num_classes,
                         splits.input_shape, splits.shift)


# --- kdcore ---------------------------------------------------------------------------------------
@dataclass
class KdcoreRun:
    """One variant through kdcore: its method (built once, so compiled code is reused across turns)."""

    cfg: ExperimentConfig
    method: Method
    cached: bool
    initial: dict[str, torch.Tensor]  # the method's state at the start of every turn

    def turn(self, splits: DatasetSplits, epochs: int, device: torch.device) -> tuple[float, float]:
        """Seconds to build the teacher cache (0 without one) and to train ``epochs`` from the initial weights."""
        self.method.load_state_dict(self.initial)
        cache_s = 0.0
        if self.cached:  # what a study caches: the outputs the method reads, on the whole training split
            assert self.method.teacher is not None
            sync(device)
            start = time.perf_counter()
            self.method.teacher.cache = predict_outputs(self.method.teacher.model, splits.train.x, device,
                                                        self.cfg.train.amp, self.method.teacher_keys())
            sync(device)
            cache_s = time.perf_counter() - start
        sync(device)
        start = time.perf_counter()
        fit(self.method, splits, self.cfg.train, role="student", epochs=epochs, device=device, progress=False)
        sync(device)
        return cache_s, time.perf_counter() - start


def kdcore_run(cfg: ExperimentConfig, teacher: nn.Module, student: nn.Module, x: torch.Tensor,
               cached: bool) -> KdcoreRun:
    """The variant as a study builds it: the registered method over a TeacherSource (none for ``none``)."""
    method_name = cfg.distill.method
    source = TeacherSource(teacher) if method_name != "none" else None
    method = build_method(method_name, student, source, cfg.distill, example=x[:8])
    initial = {k: v.detach().clone() for k, v in method.state_dict().items()}
    return KdcoreRun(cfg, method, cached, initial)


# --- the hand-written loop ------------------------------------------------------------------------
@dataclass
class HandRun:
    """One variant written by hand: student, adapter (FitNets), the networks it calls (compiled or not)."""

    cfg: ExperimentConfig
    student: nn.Module
    teacher: nn.Module
    adapter: nn.Module
    cached: bool
    memory: torch.memory_format | None  # channels_last where kdcore uses it, else None
    net: Callable[..., Any]  # the student, compiled or not
    teacher_net: Callable[..., Any]  # the teacher as the loop calls it each step, compiled or not
    initial: dict[str, dict[str, torch.Tensor]]

    def loss(self, out: Any, teacher_out: Any, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy, plus Hinton's T^2-scaled KL or the FitNets hint, with kdcore's default weights."""
        d = self.cfg.distill
        ce = F.cross_entropy(out.logits, y)
        if d.method == "none":
            return ce
        if d.method == "kd":
            t = d.temperature
            kl = F.kl_div(F.log_softmax(out.logits.float() / t, -1), F.log_softmax(teacher_out.float() / t, -1),
                          reduction="batchmean", log_target=True) * t * t
            return (1 - d.alpha) * ce + d.alpha * kl
        hint = F.mse_loss(self.adapter(out.features["penultimate"]).float(), teacher_out.float())
        return ce + 100.0 * hint  # FitNets' weight 100, cross-entropy 1

    def teacher_output(self, out: Any) -> torch.Tensor:
        """What the loss reads from the teacher: logits for KD, the penultimate features for FitNets."""
        return out.logits if self.cfg.distill.method == "kd" else out.features["penultimate"]

    def turn(self, splits: DatasetSplits, epochs: int, device: torch.device) -> tuple[float, float]:
        """Seconds to build the teacher cache (0 without one) and to train ``epochs`` from the initial weights."""
        self.student.load_state_dict(self.initial["student"])
        self.adapter.load_state_dict(self.initial["adapter"])
        train = self.cfg.train
        bf16 = device.type == "cuda" and train.amp and torch.cuda.is_bf16_supported()
        fp16 = device.type == "cuda" and train.amp and not bf16
        autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16 if bf16 else torch.float16)) \
            if bf16 or fp16 else nullcontext
        scaler = torch.amp.GradScaler("cuda") if fp16 else None
        cache_s, cache = 0.0, None
        if self.cached:
            sync(device)
            start = time.perf_counter()
            with torch.no_grad():
                parts = []
                for chunk in splits.train.x.split(CHUNK):
                    with autocast():
                        parts.append(self.teacher_output(self.teacher(chunk.to(device))).float())
                cache = torch.cat(parts)  # (N, K)
            sync(device)
            cache_s = time.perf_counter() - start

        sync(device)
        start = time.perf_counter()
        x, y = splits.train.x, splits.train.y.to(device)
        if self.memory is not None:  # converted on the CPU, as kdcore does
            x = x.contiguous(memory_format=self.memory)
        x = x.to(device)
        x_val, y_val = splits.val.x.to(device), splits.val.y.to(device)
        params = [*self.student.parameters(), *self.adapter.parameters()]
        optimizer = torch.optim.SGD(params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay,
                                    nesterov=True, fused=True)
        for _ in range(epochs):
            self.student.train()
            perm = torch.randperm(len(y), device=device)
            if len(y) % train.batch_size == 1:  # batch norm cannot train on one sample
                perm = perm[:-1]
            for index in perm.split(train.batch_size):
                xb, yb = x[index], y[index]
                if self.memory is not None:
                    xb = xb.contiguous(memory_format=self.memory)
                with autocast():
                    if cache is not None:
                        teacher_out = cache[index]
                    elif self.cfg.distill.method != "none":
                        with torch.no_grad():
                            teacher_out = self.teacher_output(self.teacher_net(xb))
                    else:
                        teacher_out = None
                    loss = self.loss(self.net(xb), teacher_out, yb)
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
            self.student.eval()
            with torch.no_grad(), autocast():
                hits = sum((self.net(xv).logits.argmax(-1) == yv).sum() for xv, yv in
                           zip(x_val.split(CHUNK), y_val.split(CHUNK), strict=True))
            hits.item()  # one sync per epoch: the validation accuracy, as one reads it
        sync(device)
        return cache_s, time.perf_counter() - start


def hand_run(cfg: ExperimentConfig, teacher: nn.Module, student: nn.Module, x: torch.Tensor, cached: bool,
             device: torch.device, compiled: bool) -> HandRun:
    """The variant by hand; ``teacher`` is the hand-written loops' own copy (in their memory format)."""
    adapter: nn.Module = nn.Identity()
    if cfg.distill.method == "fitnet":
        with torch.no_grad():
            s_dim = student.eval()(x[:2]).features["penultimate"].shape[1]
            t_dim = teacher(x[:2].to(device)).features["penultimate"].shape[1]
        student.train()
        adapter = nn.Linear(s_dim, t_dim) if s_dim != t_dim else nn.Identity()
    memory = torch.channels_last if channels_last(cfg, device) else None
    student, adapter = student.to(device), adapter.to(device)
    if memory is not None:
        student, adapter = student.to(memory_format=memory), adapter.to(memory_format=memory)
    initial = {"student": {k: v.detach().clone() for k, v in student.state_dict().items()},
               "adapter": {k: v.detach().clone() for k, v in adapter.state_dict().items()}}
    return HandRun(cfg, student, teacher, adapter, cached, memory, torch.compile(student) if compiled else student,
                   torch.compile(teacher) if compiled else teacher, initial)


# --- the measurement ------------------------------------------------------------------------------
def throughput(args: argparse.Namespace, device: torch.device) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Per variant: kdcore and hand-written samples/s (median turn) and the median per-round ratio."""
    set_determinism(0, args.threads, device)  # what a study sets (deterministic kernels on an accelerator)
    splits = synthetic_splits(args.samples, args.side, seed=0)
    cfgs = {(name, compiled): config(METHODS[name][0], args, compiled and HAS_COMPILE)
            for compiled in ((False, True) if args.compile else (False,)) for name in METHODS}
    teacher = calibrated_teacher(cfgs["none", False], splits, device)
    hand_teacher = copy.deepcopy(teacher)  # what one writes: the teacher in the loop's memory format too
    if channels_last(cfgs["none", False], device):
        hand_teacher.to(memory_format=torch.channels_last)
    notes = []
    runs: dict[str, dict[str, Any]] = {}
    for (name, compiled), cfg in cfgs.items():
        cached = METHODS[name][1]
        label = f"{name}+compile" if compiled else name
        torch.manual_seed(1)  # every student starts from the same weights
        initial = build_model(cfg.student, splits.input_shape, splits.num_classes).state_dict()

        def fresh(cfg: ExperimentConfig = cfg, initial: dict[str, torch.Tensor] = initial) -> nn.Module:
            model = build_model(cfg.student, splits.input_shape, splits.num_classes)
            model.load_state_dict(initial)
            return model

        runs[label] = {}
        if not compiled or HAS_COMPILE:
            runs[label]["kdcore"] = kdcore_run(cfg, teacher, fresh(), splits.train.x, cached)
        runs[label]["hand"] = hand_run(cfg, hand_teacher, fresh(), splits.train.x, cached, device, compiled)
    if args.compile and not HAS_COMPILE:
        notes.append("kdcore +compile: not run, this kdcore's TrainConfig has no `compile` field yet "
                     "(hand-written compiled loop only)")

    # Warm-up on a few batches, every batch shape a timed turn meets (the last, partial one too), untimed.
    batch = args.batch_size
    warm = subset(splits, min(len(splits.train), args.warmup_steps * batch + len(splits.train) % batch))
    for variant in runs.values():
        for run in variant.values():
            run.turn(warm, 1, device)

    times: dict[str, dict[str, list[tuple[float, float]]]] = {
        label: {impl: [] for impl in variant} for label, variant in runs.items()}
    for round_ in range(args.rounds):
        for label, variant in runs.items():
            order = list(variant) if round_ % 2 == 0 else list(reversed(variant))
            for impl in order:
                times[label][impl].append(variant[impl].turn(splits, args.epochs, device))

    samples = (len(splits.train) - (len(splits.train) % batch == 1)) * args.epochs
    results: dict[str, dict[str, float]] = {}
    for label, by_impl in times.items():
        rows = {impl: samples / statistics.median(t for _, t in ts) for impl, ts in by_impl.items()}
        if "kdcore" in by_impl:
            rows["ratio"] = statistics.median(h / k for (_, h), (_, k) in
                                              zip(by_impl["hand"], by_impl["kdcore"], strict=True))
        results[label] = rows
        if METHODS[label.split("+")[0]][1] and "kdcore" in by_impl:  # the cache build, timed on its own
            cache = label.replace("kd_cached", "cache_build")
            n = len(splits.train)
            results[cache] = {impl: n / statistics.median(c for c, _ in ts) for impl, ts in by_impl.items()}
            results[cache]["ratio"] = statistics.median(h / k for (h, _), (k, _) in
                                                        zip(by_impl["hand"], by_impl["kdcore"], strict=True))
    return results, notes


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                        help="auto = cuda when available, else cpu")
    parser.add_argument("--samples", type=int, default=50_000, help="synthetic training samples (CIFAR's 50,000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed turns per variant")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed turn")
    parser.add_argument("--batch-size", type=int, default=128, help="samples per optimizer step (both loops)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (fixed for every variant)")
    parser.add_argument("--compile", action="store_true", help="also run every variant under torch.compile")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU, 128 8x8 images, one round of one epoch: that every path runs, not how fast")
    args = parser.parse_args(argv)
    args.side, args.warmup_steps = 32, 5
    if args.smoke:
        args.device, args.samples, args.side, args.batch_size = "cpu", 128, 8, 32
        args.rounds, args.epochs, args.warmup_steps = 1, 1, 1
    device = resolve_device(args.device)
    args.device = device.type  # what the configs say (auto has been resolved)

    started = time.perf_counter()
    results, notes = throughput(args, device)
    print(f"{TEACHER} -> {STUDENT}, {args.samples} synthetic 3x{args.side}x{args.side} samples, "
          f"batch {args.batch_size}, {args.rounds} round(s) of {args.epochs} epoch(s), threads={args.threads}, "
          f"median samples/s")
    print(f"  {'variant':<22} {'kdcore':>10} {'hand':>10} {'ratio':>7}   target")
    ratios: dict[str, float] = {}
    for label, row in results.items():
        kdcore = f"{row['kdcore']:>10.0f}" if "kdcore" in row else f"{'-':>10}"
        ratio = f"{row['ratio']:>7.2f}" if "ratio" in row else f"{'-':>7}"
        print(f"  {label:<22} {kdcore} {row['hand']:>10.0f} {ratio}   >= {TARGET}")
        if "ratio" in row:
            ratios[label] = row["ratio"]
    if not args.compile:
        notes.append("torch.compile variants: not run (pass --compile; on the CPU they take minutes to compile)")
    for note in notes:
        print(f"  note: {note}")
    print(f"device: {device_name(device)}, torch {torch.__version__}, {time.perf_counter() - started:.0f} s in all")
    return ratios


if __name__ == "__main__":
    main()
