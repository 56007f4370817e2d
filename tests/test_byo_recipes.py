"""The bring-your-own recipes of examples/byo: their inputs are written by the repo's script, and each recipe
runs a full study (findings and gates) on them, here with one epoch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from examples.byo.make_inputs import make_inputs
from kdcore.config import load_config
from kdcore.study import Study
from kdcore.tracker import MemoryTracker

BYO = Path(__file__).resolve().parents[1] / "examples" / "byo"
RECIPES = sorted(p.name for p in BYO.glob("*.yaml") if "inputs/" in p.read_text())
QUICK = ["train.epochs=1", "train.teacher_epochs=null", "train.threads=1", "train.device=cpu"]


@pytest.fixture(scope="module")
def inputs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like the repository, with the recipes' inputs written into examples/byo/inputs."""
    root = tmp_path_factory.mktemp("byo")
    make_inputs(root / "examples" / "byo" / "inputs", scale=0.25)  # a quarter of the rows: that they run
    return root


def test_every_recipe_reads_the_inputs_the_script_writes() -> None:
    assert RECIPES == ["bert_reviews.yaml", "gpt2_progressive.yaml", "sensors_parquet.yaml",
                       "shapes_imagefolder.yaml"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_recipe_runs_a_full_study_on_its_generated_inputs(recipe: str, inputs_root: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(inputs_root)  # the recipes name their inputs relative to the repository root
    cfg = load_config(BYO / recipe, QUICK)
    assert os.path.exists(cfg.data.path)
    tracker = MemoryTracker()
    summary = Study(cfg, tracker, progress=False).run()
    assert {"teacher", "baseline", "student"} <= summary.roles.keys()
    assert len(summary.gates) == 10
    parent = tracker.get_run(summary.study_id)
    assert parent.status == "FINISHED" and "kd.findings" in parent.tags
