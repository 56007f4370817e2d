"""Tiny study configs, and a store of tiny sweeps, shared by the tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kdcore.config import ExperimentConfig, load_config

TINY = [
    "data.name=digits", "teacher.name=mlp", "teacher.width=32", "teacher.depth=1",
    "student.name=mlp", "student.width=8", "student.depth=1", "train.epochs=1",
    "train.batch_size=64", "train.threads=1", "train.device=cpu",
]


def tiny_config(*overrides: str) -> ExperimentConfig:
    """A study that trains in well under a second: digits, two small MLPs, one epoch."""
    return load_config(None, [*TINY, *overrides])


@dataclass(frozen=True)
class SweepStore:
    """A store with three tiny sweeps (digits, two small MLPs, one epoch), by name -> sweep id: ``grid``
    (distill.temperature [1, 4] x distill.alpha [0.5, 0.9] x seeds [0, 1], FINISHED with its summary),
    ``broken`` (temperature [1, 4], seed 0; the temperature-4 study fails with ``BROKEN``, so the sweep
    FAILED) and ``running`` (temperature [1, 4], seed 0; only the first study ran: RUNNING, no summary yet)."""

    uri: str
    folder: Path
    ids: dict[str, str]


BROKEN = "RuntimeError: the disk is on fire"
SWEEP_GRID = """
base: tiny.yaml
name: {name}
seeds: {seeds}
grid:
  distill.temperature: [1, 4]
{more}"""


_sweep_stores: dict[Path, SweepStore] = {}  # one per test session, by its temporary folder


def sweep_store(factory: pytest.TempPathFactory) -> SweepStore:
    """The :class:`SweepStore`, built by ``run_sweep`` once per test session, whichever test module asks first."""
    base = factory.getbasetemp()
    if base not in _sweep_stores:
        _sweep_stores[base] = _build_sweep_store(factory)
    return _sweep_stores[base]


def _build_sweep_store(factory: pytest.TempPathFactory) -> SweepStore:
    from kdcore.study import Study
    from kdcore.sweep import run_point, run_sweep, start
    from kdcore.sweep_spec import expand, load_sweep
    from kdcore.tracking import MlflowTracker

    folder = factory.mktemp("sweeps")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(tiny_config().to_dict()))
    tracker = MlflowTracker(f"sqlite:///{folder / 'mlflow.db'}")

    def sweep(name: str, seeds: str, more: str = "") -> tuple[Any, list[Any], str]:
        path = folder / f"{name}.yaml"
        path.write_text(SWEEP_GRID.format(name=name, seeds=seeds, more=more))
        spec = load_sweep(path)
        return spec, expand(spec), path.read_text()

    spec, points, text = sweep("grid", "[0, 1]", "  distill.alpha: [0.5, 0.9]\n")
    ids = {"grid": run_sweep(spec, points, tracker, text, echo=_quiet).sweep_id}
    spec, points, text = sweep("broken", "[0]")
    real = Study.run

    def broken(self: Study) -> Any:
        if self.cfg.distill.temperature == 4:
            raise RuntimeError(BROKEN.partition(": ")[2])
        return real(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Study, "run", broken)
        ids["broken"] = run_sweep(spec, points, tracker, text, echo=_quiet).sweep_id
    spec, points, text = sweep("running", "[0]")
    ids["running"] = start(tracker, spec, text, None)
    run_point(tracker, ids["running"], points[0])
    return SweepStore(tracker.uri, folder, ids)


def _quiet(line: str) -> None:
    """A sweep's progress lines, unprinted."""
