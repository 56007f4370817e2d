"""Offline KD speed against a minimal hand-written PyTorch loop, measured in one process.

Prints three ratios (targets in brackets):
  (a) kdcore KD throughput, teacher run each step  /  hand-written loop        [>= 1.0]
  (b) kdcore KD throughput, cached teacher outputs /  hand-written loop        [>= 1.8]
  (c) share of a study's wall time spent in MLflow logging calls              [<= 5%]
      (also printed for the seconds-long digits example, where MLflow's fixed
      per-run cost weighs most)

Both loops train the same student from the same initial weights on the same data and teacher,
with the same batch order machinery, optimizer and loss. kdcore's time includes everything its
``fit`` does per epoch (validation pass, checkpoint, loss bookkeeping). Variants run in
alternating turns and the medians are quoted, because the machine is shared and noisy.

    python benchmarks/bench_offline_kd.py [--threads 1] [--rounds 5] [--epochs 2] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from kdcore.config import load_config
from kdcore.data.splits import load_dataset
from kdcore.engine import CheckpointPolicy, fit, predict_outputs, set_determinism
from kdcore.methods.base import TeacherSource
from kdcore.methods.kd import KD
from kdcore.models.base import build_model
from kdcore.study import Study
from kdcore.tracking import MlflowTracker

PAIR = [
    "data.name=mnist1d", "data.n_samples=10000", "teacher.name=cnn1d", "teacher.width=64", "teacher.depth=3",
    "student.name=mlp", "student.width=64", "student.depth=2", "train.batch_size=128", "train.lr=0.003",
    "train.device=cpu",
]


def hand_written_kd(student, teacher, x, y, cfg, epochs: int) -> None:
    """What one writes by hand: shuffle, teacher forward under no_grad, KD + CE, step."""
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.train.lr)
    t, alpha = cfg.distill.temperature, cfg.distill.alpha
    teacher.eval()
    student.train()
    for _ in range(epochs):
        for index in torch.randperm(len(y)).split(cfg.train.batch_size):
            xb, yb = x[index], y[index]
            with torch.no_grad():
                teacher_logits = teacher(xb).logits
            logits = student(xb).logits
            soft = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                            reduction="batchmean", log_target=True) * t * t
            loss = (1 - alpha) * F.cross_entropy(logits, yb) + alpha * soft
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def kdcore_kd(student, teacher, splits, cfg, epochs: int, cached: bool, checkpoint: Path) -> None:
    source = TeacherSource(teacher)
    method = KD(student, source, cfg.distill)
    if cached:  # what a study caches: the outputs the method reads, on the whole training split
        source.cache = predict_outputs(teacher, splits.train.x, torch.device("cpu"), False, method.teacher_keys())
    checkpoint.unlink(missing_ok=True)
    fit(method, splits, cfg.train, role="student", epochs=epochs, device=torch.device("cpu"),
        checkpoint=checkpoint, checkpoint_policy=CheckpointPolicy.of(cfg.train), progress=False)  # as a study


SMOKE = ["data.n_samples=600", "teacher.width=8", "student.width=8"]  # seconds: that it runs, not how fast


def throughput(args: argparse.Namespace) -> dict[str, float]:
    cfg = load_config(None, [*PAIR, f"train.threads={args.threads}", *(SMOKE if args.smoke else [])])
    set_determinism(0, args.threads)
    splits = load_dataset(cfg.data)
    teacher = build_model(cfg.teacher, splits.input_shape, splits.num_classes)
    initial = build_model(cfg.student, splits.input_shape, splits.num_classes).state_dict()
    samples = len(splits.train) * args.epochs

    def fresh_student():
        model = build_model(cfg.student, splits.input_shape, splits.num_classes)
        model.load_state_dict(initial)
        return model

    variants = {
        "hand": lambda: hand_written_kd(fresh_student(), teacher, splits.train.x, splits.train.y, cfg, args.epochs),
        "kdcore": lambda: kdcore_kd(fresh_student(), teacher, splits, cfg, args.epochs, False, ckpt),
        "kdcore_cached": lambda: kdcore_kd(fresh_student(), teacher, splits, cfg, args.epochs, True, ckpt),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "bench.pt"
        for run in variants.values():  # warm-up turn, not counted
            run()
        for _ in range(args.rounds):
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    rates = {name: samples / statistics.median(ts) for name, ts in times.items()}
    # Ratios are taken within each round (the turns of a round ran back to back), then the median.
    for name in ("kdcore", "kdcore_cached"):
        rates[f"{name}/hand"] = statistics.median(h / k for h, k in zip(times["hand"], times[name], strict=True))
    return rates


def logging_share(overrides_by_round: list[list[str]], config: Path | None = None) -> tuple[float, float, float]:
    """Median (seconds in MLflow tracker calls, study wall seconds, share) over a few studies: the time the study
    waits for the tracker, reads and the waits for queued writes (flushes) included."""
    spent = {"s": 0.0}

    def timed(fn):
        def wrapper(*a, **kw):
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent["s"] += time.perf_counter() - start
        return wrapper

    shares = []
    with tempfile.TemporaryDirectory() as tmp:
        tracker = MlflowTracker(f"sqlite:///{tmp}/mlflow.db", "bench")
        for name in ("start_run", "set_status", "log_metrics", "set_tags", "delete_tag", "log_bytes",
                     "read_bytes", "end_run", "get_run", "find_runs", "flush", "metric_history"):
            setattr(tracker, name, timed(getattr(tracker, name)))
        for overrides in overrides_by_round:
            spent["s"] = 0.0
            cfg = load_config(config, overrides)
            start = time.perf_counter()
            Study(cfg, tracker, progress=False).run()
            wall = time.perf_counter() - start
            shares.append((spent["s"], wall, spent["s"] / wall))
    return sorted(shares, key=lambda s: s[2])[len(shares) // 2]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (fixed for every variant)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed turns per variant")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per timed turn")
    parser.add_argument("--smoke", action="store_true", help="a tiny pair, one round of one epoch: that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.epochs = 1, 1

    rates = throughput(args)
    print(f"threads={args.threads} rounds={args.rounds} epochs/turn={args.epochs} "
          f"(mnist1d 10k, cnn1d-w64-d3 -> mlp-w64-d2, median samples/s)")
    for name in ("hand", "kdcore", "kdcore_cached"):
        print(f"  {name:<14} {rates[name]:>10.0f} samples/s")
    print(f"(a) kdcore / hand-written, teacher each step: {rates['kdcore/hand']:.2f}   (target >= 1.0)")
    print(f"(b) kdcore cached teacher / hand-written:     {rates['kdcore_cached/hand']:.2f}   (target >= 1.8)")
    threads = f"train.threads={args.threads}"
    seeds = range(1 if args.smoke else 3)
    small = SMOKE if args.smoke else []
    pair = [[*PAIR, "train.epochs=5", f"train.seed={seed}", threads, *small] for seed in seeds]
    spent, wall, share = logging_share(pair)
    print(f"(c) MLflow logging share of a study (the pair above, 5 epochs): {100 * share:.1f}% "
          f"({spent:.2f}s of {wall:.1f}s)   (target <= 5%)")
    example = Path(__file__).resolve().parents[1] / "examples" / "digits_kd.yaml"
    epochs = ["train.epochs=1"] if args.smoke else []
    spent, wall, digits = logging_share([[f"train.seed={seed}", threads, *epochs] for seed in seeds], example)
    print(f"    the same for the seconds-long digits example:   {100 * digits:.1f}% ({spent:.2f}s of {wall:.1f}s)")
    return {**rates, "logging_share": share, "logging_share_digits": digits}

if __name__ == "__main__":
    main()
