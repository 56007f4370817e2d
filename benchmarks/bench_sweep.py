"""A sweep in one process against the same studies each started as its own ``kdx run``, measured in turns.

Prints, per variant, the median wall time (process start to exit) and the sum of its studies' own times
(each study run's start to end in the store), and the ratios that matter:

  sweep wall / its studies' time   what the sweep adds around its studies: Python and torch started once,
                                   the sweep run, the summary and one re-diagnosis pass (1.0 = nothing)
  per-study wall / sweep wall      what starting every study as its own process costs in comparison

Both variants run the same studies into fresh stores, in alternating turns (the machine is shared and
noisy), with ``train.threads`` as the sweep file sets it. By default the sweep is
examples/sweep_temperature.yaml (24 studies).

    python benchmarks/bench_sweep.py [--sweep FILE] [--rounds 1] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parent.parent
SMOKE = """
base: {base}
name: smoke
overrides: {{train.epochs: 1, teacher.width: 8, student.width: 4}}
seeds: [0]
grid:
  distill.temperature: [4]
"""


def kdx(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "kdcore.cli", *args], check=True, stdout=subprocess.DEVNULL)


def studies_seconds(uri: str) -> float:
    """The sum of the study runs' own durations in a store."""
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.`kd.role` = 'study'",
                              max_results=5000)
    return sum((run.info.end_time - run.info.start_time) / 1000 for run in runs)


def one_sweep(sweep: Path, folder: Path) -> tuple[float, float]:
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    start = time.perf_counter()
    kdx("sweep", str(sweep), "--tracking-uri", uri)
    return time.perf_counter() - start, studies_seconds(uri)


def each_own_process(sweep: Path, folder: Path) -> tuple[float, float]:
    """The sweep's studies, each written to a config file and run by its own ``kdx run`` process."""
    from kdcore.sweep_spec import expand, load_sweep

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    configs = []
    for k, point in enumerate(expand(load_sweep(sweep))):
        path = folder / f"study{k}.yaml"
        path.write_text(yaml.safe_dump(point.config.to_dict()))
        configs.append(path)
    start = time.perf_counter()
    for path in configs:
        kdx("run", str(path), "--tracking-uri", uri, "--no-progress")
    return time.perf_counter() - start, studies_seconds(uri)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "examples" / "sweep_temperature.yaml")
    parser.add_argument("--rounds", type=int, default=1, help="turns of each variant; medians are quoted")
    parser.add_argument("--smoke", action="store_true", help="one tiny study, one round: checks it runs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sweep = args.sweep
        if args.smoke:
            (Path(tmp) / "base.yaml").write_text((ROOT / "examples" / "digits_kd.yaml").read_text())
            sweep = Path(tmp) / "sweep_smoke.yaml"
            sweep.write_text(SMOKE.format(base="base.yaml"))
        times: dict[str, list[tuple[float, float]]] = {"sweep": [], "own processes": []}
        for turn in range(1 if args.smoke else args.rounds):
            for name, variant in (("sweep", one_sweep), ("own processes", each_own_process)):
                folder = Path(tmp) / f"{name.replace(' ', '_')}{turn}"
                folder.mkdir()
                times[name].append(variant(sweep, folder))
    wall = {name: statistics.median(w for w, _ in runs) for name, runs in times.items()}
    inside = {name: statistics.median(s for _, s in runs) for name, runs in times.items()}
    for name in times:
        print(f"{name:>14}: wall {wall[name]:7.1f} s, its studies' own time {inside[name]:7.1f} s")
    ratios = {"sweep wall / its studies' time": wall["sweep"] / inside["sweep"],
              "per-study wall / sweep wall": wall["own processes"] / wall["sweep"]}
    for label, value in ratios.items():
        print(f"{label}: {value:.2f}")
    return ratios


if __name__ == "__main__":
    main()
