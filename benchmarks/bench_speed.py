"""Every speed target in one run, each ratio printed beside its target (``kdx bench speed`` runs this).

  training    kdcore / hand-written loop, teacher each step                          [>= 1.0]
              kdcore / hand-written loop, cached teacher                             [>= 1.8]
  tracking    share of a study's wall time spent waiting for MLflow, MNIST-1D pair   [<= 5%]
              the same for the seconds-long digits example                           [<= 10%]
  start-up    kdx --help, seconds                                                    [<= 0.3]
              kdx studies / python -c "import mlflow"                                [<= 1.5]
              digits example launched (warm starter): wall / the study's own time    [<= 1.5]
              (also printed: the same for a cold ``kdx run``, which pays every import)

Training and tracking come from ``bench_offline_kd.py``. Start-up times whole processes as a user starts
them, in alternating turns, and quotes medians; the launched example goes through the launcher and its warm
starter, as the dashboard's Run button does. The torch thread count is fixed (``--threads``).

    python benchmarks/bench_speed.py [--threads 1] [--rounds 5] [--epochs 5] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_offline_kd  # a sibling script, found through the line above

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_kd.yaml"
TARGETS = {  # ratio -> (target, direction)
    "kdcore/hand": (1.0, ">="), "kdcore_cached/hand": (1.8, ">="),
    "logging_share": (0.05, "<="), "logging_share_digits": (0.10, "<="),
    "help_s": (0.3, "<="), "studies/import_mlflow": (1.5, "<="), "launched_wall/study": (1.5, "<="),
}


def _kdx() -> list[str]:
    found = shutil.which("kdx", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "kdcore.cli"]


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def process_times(rounds: int, folder: Path, uri: str) -> dict[str, float]:
    """``kdx --help``, ``kdx studies`` and ``import mlflow`` as new processes, in alternating turns: medians."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    commands = {"help": [*_kdx(), "--help"], "studies": [*_kdx(), "studies"],
                "import_mlflow": [sys.executable, "-c", "import mlflow"]}
    for command in commands.values() if rounds > 1 else ():  # warm-up turn: files in the page cache, as for a
        _timed(command, folder, env)  # user's second call
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            times[name].append(_timed(command, folder, env))
    ratios = [s / m for s, m in zip(times["studies"], times["import_mlflow"], strict=True)]
    return {"help_s": statistics.median(times["help"]), "studies_s": statistics.median(times["studies"]),
            "import_mlflow_s": statistics.median(times["import_mlflow"]),
            "studies/import_mlflow": statistics.median(ratios)}


def launched_example(rounds: int, folder: Path, uri: str, overrides: list[str], cold: bool) -> dict[str, float]:
    """The digits example through the launcher and its warm starter (wall from launch to finished, against the
    time the study reports for itself), and with ``cold`` once as a new ``kdx run`` process."""
    from kdcore import launcher, warm_start
    from kdcore.config import load_config
    from kdcore.study_list import list_studies
    from kdcore.tracking import MlflowTracker

    root = folder / "jobs"
    root.mkdir()
    os.environ.update({"KDX_JOBS_DIR": str(root), "KDX_WARM_START": "1"})
    warm_start.ensure(root)
    deadline = time.monotonic() + 600
    while not warm_start.ready(root):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the warm starter did not come up: {(root / warm_start.LOG).read_text()[-500:]}")
        time.sleep(0.2)
    tracker = MlflowTracker(uri)
    ratios = []
    try:
        for seed in range(rounds):
            cfg = load_config(EXAMPLE, [f"train.seed={100 + seed}", *overrides])
            start = time.perf_counter()
            job = launcher.wait(launcher.launch(cfg, tracking_uri=uri).job_id, 900)
            wall = time.perf_counter() - start
            if job.status != "finished":
                raise RuntimeError(f"the launched example ended {job.status}: {job.message}")
            ratios.append(wall / tracker.get_run(str(job.study_id)).metrics["study/wall_s"])
    finally:
        warm_start.stop(root)
    results = {"launched_wall/study": statistics.median(ratios), "cold_wall/study": float("nan")}
    if cold:
        start = time.perf_counter()
        subprocess.run([*_kdx(), "run", str(EXAMPLE), "train.seed=99", *overrides, "--no-progress",
                        "--tracking-uri", uri], cwd=folder, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
        newest = list_studies(uri)["study_id"].iloc[0]
        results["cold_wall/study"] = wall / tracker.get_run(newest).metrics["study/wall_s"]
    return results


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (fixed for every variant)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed turns per variant")
    parser.add_argument("--epochs", type=int, default=5,
                        help="epochs per timed training turn (the cached teacher is built once per turn)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round: that it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.epochs = 1, 1
    threads = f"train.threads={args.threads}"
    load = os.getloadavg()[0]

    epochs = ["train.epochs=1"] if args.smoke else []
    if args.smoke:  # these two parts are bench_offline_kd's own, and its --smoke runs them
        rates = {"kdcore/hand": float("nan"), "kdcore_cached/hand": float("nan")}
        share = digits = float("nan")
    else:
        rates = bench_offline_kd.throughput(args)
        pair = [[*bench_offline_kd.PAIR, "train.epochs=5", f"train.seed={seed}", threads] for seed in range(3)]
        _, _, share = bench_offline_kd.logging_share(pair)
        _, _, digits = bench_offline_kd.logging_share([[f"train.seed={s}", threads] for s in range(3)], EXAMPLE)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        launched = launched_example(args.rounds, folder, uri, [threads, *epochs], cold=not args.smoke)
        startup = process_times(args.rounds, folder, uri)
    results = {"kdcore/hand": rates["kdcore/hand"], "kdcore_cached/hand": rates["kdcore_cached/hand"],
               "logging_share": share, "logging_share_digits": digits, **startup, **launched}

    print(f"kdx bench speed: threads={args.threads} rounds={args.rounds} load average at start {load:.2f} "
          f"on {os.cpu_count()} cores{' (smoke: tiny sizes, not a measurement)' if args.smoke else ''}")
    rows = [("training", "kdcore / hand-written, teacher each step", "kdcore/hand", "{:.2f}"),
            ("", "kdcore / hand-written, cached teacher", "kdcore_cached/hand", "{:.2f}"),
            ("tracking", "MLflow share of a study, MNIST-1D pair", "logging_share", "{:.1%}"),
            ("", "MLflow share of a study, digits example", "logging_share_digits", "{:.1%}"),
            ("start-up", "kdx --help, seconds", "help_s", "{:.2f}"),
            ("", "kdx studies / import mlflow", "studies/import_mlflow", "{:.2f}"),
            ("", "digits example launched: wall / study's own time", "launched_wall/study", "{:.2f}")]
    for group, label, key, fmt in rows:
        target, sense = TARGETS[key]
        met = results[key] >= target if sense == ">=" else results[key] <= target  # False for nan: not measured
        shown = fmt.format(target) if "%" not in fmt else f"{target:.0%}"
        print(f"  {group:<9} {label:<52} {fmt.format(results[key]):>7}   target {sense} {shown:<5} "
              f"{'met' if met else 'NOT MET'}")
    print(f"  (kdx studies {startup['studies_s']:.2f} s, import mlflow {startup['import_mlflow_s']:.2f} s; "
          f"a cold kdx run of the digits example: wall / study's own time {launched['cold_wall/study']:.2f})")
    return results


if __name__ == "__main__":
    main()
