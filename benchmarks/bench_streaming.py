"""Training from a memory-mapped file (data.stream: true) against in-memory tensors, measured in one process.

Prints the median epoch time of each and their ratio, streamed / in-memory (1.0 = no cost), and the peak
memory of each way of holding the data:

  epoch time  the engine's loop (``kdcore.engine.fit``, one epoch, a student trained on labels as a
              study's baseline is) on a generated image folder; both variants train the same model from the
              same weights in the same batch order, in alternating turns (the machine is shared and noisy),
              with torch.set_num_threads fixed. The decoded file sits in the page cache after the first
              turn, so this is the cost of reading batches through the map, not of a cold disk.
  peak memory what each variant adds to the process while it loads the data and trains one epoch, sampled
              from /proc/self/status (Linux): anonymous memory (RssAnon) is what the data costs that
              cannot be handed back; the resident set (VmRSS) also counts the file pages the map read,
              which the kernel can reclaim. The streamed variant goes first, so neither inherits the
              other's freed memory.

    python benchmarks/bench_streaming.py [--images 6000] [--size 32] [--rounds 5] [--threads 1] [--smoke]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kdcore.config import load_config
from kdcore.data.splits import load_dataset
from kdcore.engine import fit, set_determinism
from kdcore.methods.base import build_method
from kdcore.models.base import build_model

CLASSES = 4
MODEL = ["teacher.name=cnn2d", "student.name=cnn2d", "student.width=16", "student.depth=2", "train.batch_size=128",
         "train.device=cpu"]


def make_folder(root: Path, images: int, size: int) -> Path:
    """``images`` random RGB PNGs of ``size`` pixels in CLASSES class folders (a brightness band each)."""
    rng = np.random.default_rng(0)
    for i in range(images):
        k = i % CLASSES
        folder = root / f"class{k}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.random((size, size, 3)) * 100 + 50 * k
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:06d}.png")
    return root


def config(folder: Path, stream: bool, threads: int):
    return load_config(None, [*MODEL, "data.name=imagefolder", f"data.path={folder}", f"data.stream={stream}",
                              f"train.threads={threads}"])


def one_epoch(cfg, splits, initial: dict) -> float:
    """Seconds of one training epoch of the student from ``initial`` weights."""
    set_determinism(cfg.train.seed, cfg.train.threads)
    student = build_model(cfg.student, splits.input_shape, splits.num_classes)
    student.load_state_dict(initial)
    method = build_method("none", student, None, cfg.distill.for_plain_labels())
    start = time.perf_counter()
    fit(method, splits, cfg.train, role="student", epochs=1, device=torch.device("cpu"), progress=False)
    return time.perf_counter() - start


def epoch_times(folder: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    variants = {name: config(folder, name == "streamed", args.threads) for name in ("in-memory", "streamed")}
    splits = {name: load_dataset(cfg.data) for name, cfg in variants.items()}  # decoded once, before timing
    cfg = variants["in-memory"]
    set_determinism(cfg.train.seed, args.threads)
    initial = build_model(cfg.student, splits["in-memory"].input_shape, CLASSES).state_dict()
    for name in variants:  # warm-up turn, not counted
        one_epoch(variants[name], splits[name], initial)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name in variants:
            times[name].append(one_epoch(variants[name], splits[name], initial))
    return times


def status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB; 0 where there is none."""
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.exists() else []:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def added_memory(folder: Path, stream: bool, threads: int) -> dict[str, float]:
    """Peak memory added while the data is loaded and one epoch trained: anonymous (RssAnon) and resident
    (VmRSS), sampled every few milliseconds, above what the process held before."""
    gc.collect()
    before = {field: status_mib(field) for field in ("RssAnon", "VmRSS")}
    peak = dict(before)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            for field in peak:
                peak[field] = max(peak[field], status_mib(field))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cfg = config(folder, stream, threads)
    splits = load_dataset(cfg.data)
    one_epoch(cfg, splits, build_model(cfg.student, splits.input_shape, splits.num_classes).state_dict())
    done.set()
    sampler.join()
    del splits
    gc.collect()
    return {field: peak[field] - before[field] for field in peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6000, help="images in the generated folder")
    parser.add_argument("--size", type=int, default=32, help="side of each square image, in pixels")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed epochs per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (fixed for every variant)")
    parser.add_argument("--smoke", action="store_true", help="a few small images, one round: runs in seconds")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.size, args.rounds = 120, 16, 1
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("KDX_CACHE_DIR", str(Path(tmp) / "cache"))  # the streamed file goes away after
        folder = make_folder(Path(tmp) / "images", args.images, args.size)
        times = epoch_times(folder, args)
        memory = {name: added_memory(folder, name == "streamed", args.threads) for name in ("streamed", "in-memory")}
    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = statistics.median(s / m for s, m in zip(times["streamed"], times["in-memory"], strict=True))
    decoded = args.images * 3 * args.size * args.size * 4 / 2**20
    print(f"{args.images} images of 3x{args.size}x{args.size} ({decoded:.1f} MiB decoded), student cnn2d-w16-d2, "
          f"batch 128, threads={args.threads}, rounds={args.rounds}")
    for name in times:
        print(f"  {name:<10} epoch {median[name]:.3f} s   peak memory added: {memory[name]['RssAnon']:.0f} MiB "
              f"anonymous, {memory[name]['VmRSS']:.0f} MiB resident")
    print(f"streamed/in-memory epoch time: {ratio:.2f}")


if __name__ == "__main__":
    main()
