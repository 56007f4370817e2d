"""Each chart builder on small hand-made tables: the traces it draws and the numbers behind them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dashboard import charts
from kdcore.metrics import expected_calibration_error


def runs_table() -> pd.DataFrame:
    rows = []
    for i, (seed, temperature) in enumerate([(0, "4"), (1, "4"), (0, "8")]):
        for role in ("teacher", "student"):
            rows.append({"run_id": f"r{i}{role[0]}", "tags.kd.role": role, "tags.kd.study_id": f"s{i}",
                         "label": f"study T{temperature} seed{seed} · {role}", "params.train.seed": str(seed),
                         "params.distill.temperature": temperature, "params.train.lr": "0.001",
                         "metrics.test/acc": 0.9 if role == "teacher" else 0.8 + i / 100,
                         "metrics.model/params": 10_000 if role == "teacher" else 1_000,
                         "metrics.test/acc_class_0": 0.5, "metrics.test/acc_class_1": 1.0})
    return pd.DataFrame(rows)


def history_table(runs: pd.DataFrame) -> pd.DataFrame:
    rows = [(run_id, "val/acc", step, 0.1 * step + (0.1 if run_id.startswith("r1") else 0.0), 0)
            for run_id in runs["run_id"] for step in range(3)]
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "timestamp"])


def test_curves_aggregate_seeds_into_a_band_and_split_on_request() -> None:
    runs = runs_table()
    figure = charts.curves(history_table(runs), runs, "val/acc", aggregate_seeds=True)
    names = [t.name for t in figure.data]
    assert "study T4 · student (2 seeds)" in names and "study T8 seed0 · student" in names
    bands = [t for t in figure.data if t.fill == "toself"]
    assert len(bands) == 2  # teacher and student of the two T4 seeds
    mean = next(t for t in figure.data if t.name == "study T4 · student (2 seeds)")
    assert list(mean.y) == pytest.approx([0.05, 0.15, 0.25])
    split = charts.curves(history_table(runs), runs, "val/acc", aggregate_seeds=False)
    assert len(split.data) == 6 and not any(t.fill == "toself" for t in split.data)


def test_curves_without_data_say_so() -> None:
    figure = charts.curves(pd.DataFrame(columns=["run_id", "key", "step", "value"]), runs_table(), "val/acc")
    assert not figure.data and figure.layout.annotations[0].text == "no data"


def test_ratio_bars_have_both_ratios_and_the_gate_lines() -> None:
    studies = pd.DataFrame({"study_id": ["a", "b"], "label": ["A", "B"], "ratio_teacher": [0.9, 0.97],
                            "ratio_baseline": [1.01, 1.08]})
    figure = charts.ratio_bars(studies)
    assert [t.name for t in figure.data] == ["student / teacher", "student / baseline"]
    assert sorted(shape.y0 for shape in figure.layout.shapes) == [0.95, 1.05]


def test_entropy_histograms_mark_ln_k() -> None:
    uniform, sure = np.full((5, 4), 0.25), np.eye(4)[[0, 1, 2, 3, 0]]
    figure = charts.entropy_histograms({"teacher": sure, "student": uniform})
    assert [t.name for t in figure.data] == ["teacher", "student"]
    assert list(figure.data[1].x) == pytest.approx([math.log(4)] * 5)
    assert figure.layout.shapes[0].x0 == pytest.approx(math.log(4))


def test_reliability_diagram_reports_the_same_ece_as_kdcore() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=200)
    labels = rng.integers(0, 5, size=200)
    expected = expected_calibration_error(torch.tensor(probs, dtype=torch.float32), torch.tensor(labels))
    figure = charts.reliability_diagram({"student": (probs, labels)})
    assert figure.data[0].name == "perfect calibration"
    assert figure.data[1].name == f"student (ECE {expected:.3f})"
    _, ece = charts.calibration(probs, labels)
    assert ece == pytest.approx(expected, abs=1e-6)


def test_compression_frontier_links_each_study_and_colours_roles() -> None:
    figure = charts.compression_frontier(runs_table())
    lines = [t for t in figure.data if t.mode == "lines"]
    markers = {t.name: t for t in figure.data if t.mode == "markers"}
    assert len(lines) == 3 and set(markers) == {"teacher", "student"}
    assert figure.layout.xaxis.type == "log"


def test_parallel_coordinates_keep_only_varying_numeric_params() -> None:
    table = runs_table()[lambda f: f["tags.kd.role"] == "student"].assign(ratio_teacher=[0.9, 0.91, 0.95])
    figure = charts.parallel_coordinates(table)
    labels = [d.label for d in figure.data[0].dimensions]
    assert labels == ["distill.temperature", "ratio_teacher"]  # lr is constant, the seed is not a hyperparameter
    assert charts.parallel_coordinates(table.head(1)).layout.annotations


def test_param_diff_shows_only_what_differs() -> None:
    table = runs_table()[lambda f: f["tags.kd.role"] == "student"].set_index("label")
    diff = charts.param_diff(table)
    assert list(diff.columns) == ["train.seed", "distill.temperature"]
    assert charts.param_diff(table.head(1)).columns.empty


def test_per_class_accuracy_groups_roles() -> None:
    figure = charts.per_class_accuracy(runs_table().head(2))
    assert [t.name for t in figure.data] == ["teacher", "student"]
    assert list(figure.data[0].x) == ["0", "1"] and list(figure.data[0].y) == [0.5, 1.0]


def test_confusion_matrix_counts() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    figure = charts.confusion_matrix(probs, np.array([0, 1, 1]), title="student")
    assert figure.data[0].z.tolist() == [[1, 0], [1, 1]]
    assert figure.layout.title.text == "Confusion matrix student"
