"""The exported student in ONNX Runtime against the same student in PyTorch: latency on the same inputs.

Trains a study (the digits example by default) in a temporary store, exports its student with
``kdcore.export`` (what ``kdx export --format onnx`` runs: the ONNX check included), then times one forward
pass of the ONNX file in ONNX Runtime and of the PyTorch model on the same test inputs, at batch 1 and 64.
Both run on one thread (``torch.set_num_threads(1)``, ``intra_op_num_threads=1``); the runtimes take turns
(the order alternating every round) and the medians are quoted, because the machine is shared and noisy.

Prints per batch size: ms per forward pass in each runtime, and the ratio PyTorch / ONNX Runtime
(above 1: ONNX Runtime is faster).

    python benchmarks/bench_export.py [--config examples/digits_kd.yaml | --study ID] [--rounds 30] [--calls 20]
    python benchmarks/bench_export.py --smoke   (a tiny study, a few turns: that it runs)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from kdcore.config import load_config
from kdcore.data.splits import load_dataset
from kdcore.export import export_study
from kdcore.export_formats import WEIGHT_FILES, Logits, onnx_session
from kdcore.export_roles import load_role
from kdcore.study import Study
from kdcore.tracking import MlflowTracker

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_kd.yaml"
SMOKE = ["data.name=digits", "teacher.name=mlp", "teacher.width=16", "teacher.depth=1", "student.name=mlp",
         "student.width=8", "student.depth=1", "train.epochs=1", "train.threads=1", "train.device=cpu"]
BATCHES = (1, 64)


def per_call_ms(run: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) * 1000 / calls


def measure(config: Path | None, overrides: list[str], rounds: int, calls: int, study: str | None = None,
            uri: str | None = None) -> dict[int, dict[str, float]]:
    """Per batch size: the median ms per forward pass in ``onnxruntime`` and ``torch``, and ``ratio`` (torch / ORT).
    The student of ``study`` in ``uri`` when given, else of a study of ``config`` trained in a temporary store."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if study is None:
            cfg = load_config(config, [*overrides, "train.threads=1", "train.device=cpu"])
            uri = f"sqlite:///{tmp}/mlflow.db"
            study = Study(cfg, MlflowTracker(uri, "bench"), progress=False).run().study_id
        result = export_study(study, fmt="onnx", out=Path(tmp) / "export", uri=uri)
        session = onnx_session(result.folder / WEIGHT_FILES["onnx"], threads=1)
        loaded = load_role(MlflowTracker.for_run(result.study_id, uri), result.study_id, "student")
        model = Logits(loaded.model).eval()
        x = load_dataset(loaded.cfg.data).test.x
        out: dict[int, dict[str, float]] = {}
        for batch in BATCHES:
            inputs = x[:batch].contiguous()
            feed = {session.get_inputs()[0].name: inputs.numpy()}

            def run_torch(inputs: torch.Tensor = inputs) -> object:
                with torch.inference_mode():
                    return model(inputs)

            def run_ort(feed: dict = feed) -> object:
                return session.run(None, feed)

            runs = {"onnxruntime": run_ort, "torch": run_torch}
            for run in runs.values():  # warm-up turn, not counted
                per_call_ms(run, calls)
            times: dict[str, list[float]] = {name: [] for name in runs}
            for i in range(rounds):
                for name in (list(runs) if i % 2 == 0 else list(reversed(runs))):
                    times[name].append(per_call_ms(runs[name], calls))
            out[batch] = {name: statistics.median(ts) for name, ts in times.items()}
            # The ratio is taken within each round (its two turns ran back to back), then the median.
            out[batch]["ratio"] = statistics.median(t / o for t, o in zip(times["torch"], times["onnxruntime"],
                                                                         strict=True))
    return out


def main(argv: Sequence[str] | None = None) -> dict[int, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=EXAMPLE, help="study to train and export (default: digits)")
    parser.add_argument("--rounds", type=int, default=30, help="alternating timed turns per runtime")
    parser.add_argument("--calls", type=int, default=20, help="forward passes per turn")
    parser.add_argument("--study", metavar="STUDY_ID", help="export this study's student instead of training one")
    parser.add_argument("--tracking-uri", metavar="URI", help="the store of --study (default as for kdx)")
    parser.add_argument("--smoke", action="store_true", help="a tiny study and a few turns: checks that it runs")
    args = parser.parse_args(argv)
    config, overrides = (None, SMOKE) if args.smoke else (args.config, [])
    rounds, calls = (3, 3) if args.smoke else (args.rounds, args.calls)
    results = measure(config, overrides, rounds, calls, args.study, args.tracking_uri)
    source = f"study {args.study[:8]}" if args.study else "a tiny smoke study" if args.smoke else args.config.name
    print(f"exported student of {source}: {rounds} alternating rounds of {calls} calls, one thread each, medians")
    for batch, row in results.items():
        print(f"  batch {batch:>3}: ONNX Runtime {row['onnxruntime']:.4f} ms, PyTorch {row['torch']:.4f} ms   "
              f"PyTorch / ONNX Runtime = {row['ratio']:.2f}")
    return results


if __name__ == "__main__":
    main()
