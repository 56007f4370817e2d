"""Speed of feature-based steps against response KD, measured in one process.

Prints the training throughput (samples per second through ``engine.fit``) of ``fitnet`` and ``at``
relative to ``kd`` on the same pair (the method zoo's MNIST-1D pair: a 1-d CNN teaches a small
1-d CNN), once with the teacher's outputs cached (logits and the features the method reads, as a
study does for deterministic data) and once with the teacher run every step. Ratios below 1 mean
the feature method is slower. Variants run in alternating turns and the medians are quoted,
because the machine is shared and noisy.

    python benchmarks/bench_feature_methods.py [--threads 1] [--rounds 5] [--epochs 2] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from kdcore.config import load_config
from kdcore.data.splits import load_dataset
from kdcore.engine import fit, predict_outputs, set_determinism
from kdcore.methods.base import TeacherSource, build_method
from kdcore.models.base import build_model

PAIR = Path(__file__).resolve().parent / "pairs" / "mnist1d.yaml"
METHODS = ("kd", "fitnet", "at")


def throughput(method: str, splits, teacher, cfg, epochs: int, cached: bool) -> float:
    """Training samples per second of ``epochs`` epochs of ``method`` (fresh student, same seed)."""
    set_determinism(cfg.train.seed, cfg.train.threads)
    student = build_model(cfg.student, splits.input_shape, splits.num_classes)
    source = TeacherSource(teacher)
    distill = cfg.distill.model_copy(update={"method": method, "params": {}})
    distiller = build_method(method, student, source, distill, example=splits.train.x[:8])
    if cached:
        source.cache = predict_outputs(teacher, splits.train.x, splits.train.x.device, False,
                                       distiller.teacher_keys())
    started = time.perf_counter()
    fit(distiller, splits, cfg.train, role="student", epochs=epochs, device=splits.train.x.device, progress=False)
    return epochs * len(splits.train.y) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="600 samples, one round of one epoch: that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.epochs = 1, 1
    small = ["data.n_samples=600"] if args.smoke else []
    cfg = load_config(PAIR, [f"train.threads={args.threads}", "train.device=cpu", *small])
    splits = load_dataset(cfg.data)
    set_determinism(0, args.threads)
    teacher = build_model(cfg.teacher, splits.input_shape, splits.num_classes).eval()  # speed needs no training
    samples: dict[tuple[str, bool], list[float]] = {(m, c): [] for m in METHODS for c in (True, False)}
    for _ in range(args.rounds):  # alternating turns: every variant once per round
        for key in samples:
            samples[key].append(throughput(key[0], splits, teacher, cfg, args.epochs, key[1]))
    print(f"pair: {PAIR.name}, {len(splits.train.y)} training samples, {args.threads} thread(s), "
          f"{args.rounds} rounds of {args.epochs} epochs, medians")
    ratios = {}
    for cached in (True, False):
        base = statistics.median(samples[("kd", cached)])
        label = "cached teacher outputs" if cached else "teacher run every step"
        print(f"  {label}: kd {base:,.0f} samples/s")
        for method in METHODS[1:]:
            value = statistics.median(samples[(method, cached)])
            ratios[f"{method}/kd{' cached' if cached else ''}"] = value / base
            print(f"    {method:<7} {value:,.0f} samples/s  ratio to kd {value / base:.2f}")
    return ratios


if __name__ == "__main__":
    main()
