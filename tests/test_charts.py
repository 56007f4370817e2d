"""Each chart builder on small hand-made tables: the traces it draws and the numbers behind them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dashboard import charts


def runs_table() -> pd.DataFrame:
    """Teacher and student of three studies: T4 with seeds 0 and 1, T8 with seed 0 (list_runs' shape)."""
    rows = []
    for i, (seed, temperature) in enumerate([(0, "4"), (1, "4"), (0, "8")]):
        for role in ("teacher", "student"):
            study = f"digits T{temperature} seed{seed}"
            rows.append({"run_id": f"r{i}{role[0]}", "name": role, "status": "FINISHED", "tags.kd.role": role,
                         "tags.kd.study_id": f"study{i}-0123456789", "label": f"{study} · {role}",
                         "params.train.seed": str(seed), "params.tracking.study_name": study,
                         "params.distill.temperature": temperature, "params.train.lr": "0.001",
                         "metrics.test/acc": 0.9 if role == "teacher" else 0.8 + i / 100,
                         "metrics.model/params": 10_000.0 if role == "teacher" else 1_000.0,
                         "metrics.test/acc_class_0": 0.5, "metrics.test/acc_class_1": 1.0})
    return pd.DataFrame(rows)


def history_table(runs: pd.DataFrame) -> pd.DataFrame:
    """val/acc over 3 epochs: 0.1 * step, and 0.1 higher for the seed-1 study (runs r1*)."""
    rows = [(run_id, "val/acc", step, 0.1 * step + (0.1 if run_id.startswith("r1") else 0.0), 0)
            for run_id in runs["run_id"] for step in range(3)]
    rows.append(("r0t", "train/loss", 0, 2.0, 0))  # another metric, never drawn
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "timestamp"])


def is_blank(figure) -> bool:
    return not figure.data and [a.text for a in figure.layout.annotations] == ["no data"]


def test_curves_draw_mean_and_std_band_over_seeds_and_one_line_per_run_on_request() -> None:
    runs = runs_table()
    figure = charts.curves(history_table(runs), runs, "val/acc", aggregate_seeds=True)
    names = [t.name for t in figure.data if t.showlegend is not False]
    assert names == ["digits T4 · teacher (2 seeds)", "digits T4 · student (2 seeds)",
                     "digits T8 seed0 · teacher", "digits T8 seed0 · student"]
    bands = [t for t in figure.data if t.fill == "toself"]
    assert len(bands) == 2  # the T8 study has one seed: a plain line, no band
    mean = next(t for t in figure.data if t.name == "digits T4 · student (2 seeds)")
    assert list(mean.y) == pytest.approx([0.05, 0.15, 0.25])
    assert mean.line.color == charts.ROLE_COLORS["student"]
    std = 0.1 / math.sqrt(2)  # sample std of two seeds 0.1 apart
    band = next(t for t in bands if t.legendgroup == mean.name)
    assert list(band.x) == [0, 1, 2, 2, 1, 0]
    assert list(band.y) == pytest.approx([0.05 + std, 0.15 + std, 0.25 + std, 0.25 - std, 0.15 - std, 0.05 - std])

    split = charts.curves(history_table(runs), runs, "val/acc", aggregate_seeds=False)
    assert len(split.data) == 6 and not any(t.fill == "toself" for t in split.data)
    assert "digits T4 seed1 · student" in [t.name for t in split.data]


def test_curves_label_by_short_study_id_without_a_label_column_and_blank_without_data() -> None:
    runs = runs_table().drop(columns="label").head(2)
    figure = charts.curves(history_table(runs), runs, "val/acc")
    assert [t.name for t in figure.data] == ["study0-0 · teacher", "study0-0 · student"]
    assert figure.layout.xaxis.title.text == "epoch" and figure.layout.yaxis.title.text == "val/acc"
    assert is_blank(charts.curves(history_table(runs), runs, "val/loss"))


def test_ratio_bars_show_both_ratios_against_the_gate_lines() -> None:
    studies = pd.DataFrame({"study_id": ["a1", "b2", "c3"], "name": ["A", "B", "B"], "ratio_teacher": [0.9, 0.97, 1.0],
                            "ratio_baseline": [1.01, 1.3, 1.02]})
    figure = charts.ratio_bars(studies)
    assert [t.name for t in figure.data] == ["student / teacher", "student / baseline"]
    assert list(figure.data[0].x) == ["A", "B (b2)", "B (c3)"]  # same names told apart
    assert sorted(shape.y0 for shape in figure.layout.shapes) == [0.95, 1.05]
    assert {a.text for a in figure.layout.annotations} == {"95% of teacher", "105% of baseline"}
    assert figure.layout.yaxis.range[1] > 1.3  # a high ratio is not cut off
    assert figure.layout.legend.orientation == "h"  # above the bars, not beside them
    long = charts.ratio_bars(studies.assign(name=["fixed capacity_mismatch - one assistant seed0", "<b>", "B"]))
    assert list(long.data[0].x) == ["fixed<br>capacity_mismatch -<br>one assistant seed0", "&lt;b&gt;", "B"]


def test_ratio_bars_over_seeds_draw_the_95_percent_interval_as_error_bars() -> None:
    configs = pd.DataFrame({"study_id": ["a1", "b2"], "label": ["T2 (3 seeds)", "T8"], "ratio_teacher": [0.95, 0.9],
                            "ratio_baseline": [1.01, 1.0], "ratio_teacher_half": [0.02, np.nan],
                            "ratio_baseline_half": [0.01, np.nan]})
    figure = charts.ratio_bars(configs)
    teacher = figure.data[0]
    assert teacher.error_y.array[0] == 0.02 and math.isnan(teacher.error_y.array[1])  # one seed: no error bar
    assert "95% interval" in teacher.hovertemplate[0] and "±" not in teacher.hovertemplate[1]
    assert figure.layout.yaxis.title.text == "accuracy ratio (± 95% interval over seeds)"
    plain = charts.ratio_bars(configs.drop(columns=["ratio_teacher_half", "ratio_baseline_half"]))
    assert plain.data[0].error_y.array is None and plain.layout.yaxis.title.text == "accuracy ratio"


def test_a_sweep_study_name_loses_its_seed_like_a_hand_made_one() -> None:
    assert charts.SEED_SUFFIX.sub("", "distill.temperature=4, distill.alpha=0.5 · seed 1") == (
        "distill.temperature=4, distill.alpha=0.5")
    assert charts.SEED_SUFFIX.sub("", "digits T4 seed12") == "digits T4"


def test_entropy_histograms_mark_ln_k_as_the_maximum() -> None:
    uniform, sure = np.full((5, 4), 0.25), np.eye(4)[[0, 1, 2, 3, 0]]
    figure = charts.entropy_histograms({"A · teacher": sure, "A · student": uniform})
    assert [t.name for t in figure.data] == ["A · teacher", "A · student"]
    sure_line, uniform_line = figure.data
    assert sure_line.y[0] == 1.0 and sum(sure_line.y) == 1.0  # every sample in the first bin: entropy 0
    peak = int(np.argmax(uniform_line.y))  # every sample in the bin holding ln 4
    assert uniform_line.y[peak] == 1.0 and abs(uniform_line.x[peak] - math.log(4)) <= math.log(4) / 40
    assert uniform_line.line.color == charts.ROLE_COLORS["student"]
    assert figure.layout.shapes[0].x0 == pytest.approx(math.log(4))
    assert "maximum" in figure.layout.annotations[0].text
    assert figure.layout.xaxis.title.text == "entropy (nats)"


def test_reliability_diagram_ece_matches_a_hand_computed_case() -> None:
    # Five bins: 0.55 (right) in (.4,.6]; 0.65 (right) and 0.75 (wrong) in (.6,.8]; 0.9 (right) in (.8,1].
    # ECE = 1/4 * |1 - .55| + 2/4 * |.5 - .7| + 1/4 * |1 - .9| = 0.1125 + 0.1 + 0.025
    probs = np.array([[0.55, 0.45], [0.35, 0.65], [0.75, 0.25], [0.9, 0.1]])
    labels = np.array([0, 1, 1, 0])
    table, ece = charts.calibration(probs, labels, bins=5)
    assert ece == pytest.approx(0.2375)
    assert table["count"].tolist() == [1, 2, 1] and table["accuracy"].tolist() == pytest.approx([1, 0.5, 1])
    figure = charts.reliability_diagram({"student": (probs, labels)}, bins=5)
    assert [t.name for t in figure.data] == ["perfect calibration", "student (ECE 23.7%)"]
    assert list(figure.data[0].x) == [0, 1] and list(figure.data[0].y) == [0, 1]


def test_prediction_charts_name_their_split_and_compare_reads_validation_when_every_role_has_it() -> None:
    from dashboard.data import shared_split

    probs, labels = np.eye(3)[[0, 1, 2]], np.arange(3)
    recorded = {"test_probs": probs, "test_labels": labels}
    assert shared_split([recorded | {"val_probs": probs, "val_labels": labels}] * 2) == "val"
    assert shared_split([recorded | {"val_probs": probs, "val_labels": labels}, recorded]) == "test"
    assert charts.entropy_histograms({"s": probs}, "val").layout.title.text == "Predictive entropy (validation)"
    assert charts.reliability_diagram({"s": (probs, labels)}, split="test").layout.title.text == "Reliability (test)"


def test_calibration_agrees_with_kdcore_metrics() -> None:
    torch = pytest.importorskip("torch")
    from kdcore.metrics import expected_calibration_error

    rng = np.random.default_rng(0)
    probs, labels = rng.dirichlet(np.ones(5), size=200), rng.integers(0, 5, size=200)
    expected = expected_calibration_error(torch.tensor(probs, dtype=torch.float32), torch.tensor(labels))
    assert charts.calibration(probs, labels)[1] == pytest.approx(expected, abs=1e-6)


def test_compression_frontier_links_teacher_to_student_and_colours_roles() -> None:
    runs = pd.concat([runs_table(), pd.DataFrame([{"run_id": "r0b", "tags.kd.role": "baseline", "label": "base",
                                                   "tags.kd.study_id": "study0-0123456789", "metrics.test/acc": 0.7,
                                                   "metrics.model/params": 1_000.0}])], ignore_index=True)
    figure = charts.compression_frontier(runs)
    lines = [t for t in figure.data if t.mode == "lines"]
    assert len(lines) == 3  # one per study, teacher -> student only
    assert list(lines[0].x) == [10_000, 1_000, None] and list(lines[0].y) == pytest.approx([0.9, 0.8, None])
    markers = {t.name: t for t in figure.data if t.mode == "markers"}
    assert list(markers) == ["teacher", "baseline", "student"]
    assert markers["baseline"].marker.color == charts.ROLE_COLORS["baseline"]
    assert list(markers["student"].text) == ["digits T4 seed0 · student", "digits T4 seed1 · student",
                                             "digits T8 seed0 · student"]
    assert figure.layout.xaxis.type == "log" and figure.layout.xaxis.title.text == "parameters"
    assert figure.layout.yaxis.title.text == "test accuracy"


def test_parallel_coordinates_keep_only_present_varying_numeric_params_under_readable_names() -> None:
    table = runs_table()[lambda f: f["tags.kd.role"] == "student"].assign(ratio_teacher=[0.9, 0.91, 0.95])
    figure = charts.parallel_coordinates(table)
    labels = [d.label for d in figure.data[0].dimensions]
    assert labels == ["temperature", "student / teacher"]  # lr is constant, the seed is not a hyperparameter
    assert list(figure.data[0].dimensions[0]["values"]) == [4.0, 4.0, 8.0]  # strings became numbers
    assert list(figure.data[0].line.color) == [0.9, 0.91, 0.95]
    assert figure.layout.margin.t >= 100  # the labels above the axes are not cut
    assert charts.parallel_coordinates(table.head(1)).layout.annotations  # nothing varies: a note, no error


def test_parallel_coordinates_name_every_axis_in_words_and_need_three_differing_rows() -> None:
    table = pd.DataFrame({"params.distill.temperature": ["4", "8", "2"], "params.distill.alpha": ["0.5", "0.9", "0.1"],
                          "params.teacher.width": ["64", "128", "32"], "params.student.width": ["8", "16", "4"],
                          "params.train.lr": ["0.001", "0.01", "0.1"], "ratio_teacher": [0.9, 0.95, 0.8]})
    labels = [d.label for d in charts.parallel_coordinates(table).data[0].dimensions]
    assert labels == ["temperature", "alpha", "teacher width", "student width", "learning rate", "student / teacher"]
    two = charts.parallel_coordinates(table.head(2))
    assert not two.data and "needs 3 or more studies that differ" in charts.blank_reason(two)
    same = charts.parallel_coordinates(pd.concat([table.head(1)] * 3, ignore_index=True))
    assert not same.data and charts.blank_reason(same).startswith("needs 3")


def test_param_diff_shows_only_what_differs() -> None:
    table = runs_table()[lambda f: f["tags.kd.role"] == "student"].reset_index(drop=True)
    diff = charts.param_diff(table)
    assert list(diff.columns) == ["train.seed", "tracking.study_name", "distill.temperature"]
    assert list(diff.index) == ["digits T4 seed0 · student", "digits T4 seed1 · student", "digits T8 seed0 · student"]
    same = charts.param_diff(table.iloc[[0, 0]].reset_index(drop=True))
    assert same.empty and same.columns.empty


def test_per_class_accuracy_groups_roles_in_order() -> None:
    runs = runs_table().head(2).iloc[::-1]
    figure = charts.per_class_accuracy(runs, num_classes=3)
    assert [t.name for t in figure.data] == ["teacher", "student"]
    assert list(figure.data[0].x) == ["0", "1", "2"]
    assert list(figure.data[0].y[:2]) == [0.5, 1.0] and math.isnan(figure.data[0].y[2])  # class 2 was not logged
    assert figure.data[1].marker.color == charts.ROLE_COLORS["student"]
    assert figure.layout.xaxis.title.text == "class"


def test_confusion_matrix_counts_true_rows_against_predicted_columns() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    figure = charts.confusion_matrix(probs, np.array([0, 1, 1]), title="student")
    assert figure.data[0].z.tolist() == [[1, 0], [1, 1]]
    assert figure.layout.title.text == "Confusion matrix: student"
    assert (figure.layout.xaxis.title.text, figure.layout.yaxis.title.text) == ("predicted class", "true class")


def chain_table() -> pd.DataFrame:
    """A progressive study (list_runs' shape): teacher 90%, assistant_1 85%, assistant_2 70%, student 68%,
    baseline 72%; assistant_10 is listed before assistant_2 to check the numeric order."""
    accuracies = {"student": 0.68, "baseline": 0.72, "assistant_2": 0.70, "teacher": 0.90, "assistant_1": 0.85}
    return pd.DataFrame([{"run_id": f"r-{role}", "tags.kd.role": role, "metrics.test/acc": acc,
                          "metrics.val/best_acc": acc, "metrics.val/ece": acc / 10}
                         for role, acc in accuracies.items()])


def test_role_bars_draw_roles_in_chain_order_with_reference_lines() -> None:
    figure = charts.role_bars(chain_table(), "metrics.test/acc", "Test accuracy", {0.1: "chance (1/K)"}, percent=True)
    (bars,) = figure.data
    assert list(bars.x) == ["teacher", "assistant_1", "assistant_2", "baseline", "student"]
    assert list(bars.y) == pytest.approx([0.9, 0.85, 0.7, 0.72, 0.68])
    assert list(bars.text) == ["90.0%", "85.0%", "70.0%", "72.0%", "68.0%"]
    assert list(bars.marker.color) == [charts.ROLE_COLORS[r] for r in ("teacher", "other", "other", "baseline",
                                                                       "student")]
    assert [shape.y0 for shape in figure.layout.shapes] == [0.1]
    assert figure.layout.annotations[0].text == "chance (1/K)" and figure.layout.yaxis.tickformat == ".0%"
    plain = charts.role_bars(chain_table(), "metrics.val/ece", "ECE")
    assert plain.data[0].text[0] == "0.09" and not plain.layout.shapes
    assert plain.layout.yaxis.title.text == "val/ece"


def test_chain_accuracy_marks_a_stage_below_90_percent_of_the_previous_one() -> None:
    runs = pd.concat([chain_table(), pd.DataFrame([{"run_id": "r-a10", "tags.kd.role": "assistant_10",
                                                    "metrics.val/best_acc": 0.69}])], ignore_index=True)
    figure = charts.chain_accuracy(runs)
    accuracy, floors = figure.data
    assert list(accuracy.x) == ["teacher", "assistant_1", "assistant_2", "assistant_10", "student"]
    assert list(accuracy.y) == pytest.approx([0.9, 0.85, 0.7, 0.69, 0.68])
    # 0.70 < 0.9 * 0.85 = 0.765: assistant_2 degraded; every other stage keeps 90% of the one before it.
    colors = list(accuracy.marker.color)
    assert colors[2] == charts.CRITICAL and charts.CRITICAL not in colors[:2] + colors[3:]
    assert list(floors.x) == ["assistant_1", "assistant_2", "assistant_10", "student"]
    assert list(floors.y) == pytest.approx([0.81, 0.765, 0.63, 0.621])
    assert floors.name == "90% of the previous stage"
    assert [shape.y0 for shape in figure.layout.shapes] == [0.9, 0.72]  # teacher and baseline lines
    assert [a.text for a in figure.layout.annotations] == ["teacher", "baseline (student trained alone)"]
    stricter = charts.chain_accuracy(chain_table(), keep=0.99)
    assert stricter.data[1].name == "99% of the previous stage"
    assert list(stricter.data[0].marker.color).count(charts.CRITICAL) == 3


def test_generations_run_from_the_baseline_through_each_generation_to_the_student() -> None:
    runs = pd.DataFrame({"tags.kd.role": ["student", "generation_2", "baseline", "generation_1", "generation_10"],
                         "metrics.test/acc": [0.8, 0.78, 0.7, 0.75, 0.79]})
    figure = charts.generations(runs)
    assert list(figure.data[0].x) == ["0: baseline", "1: generation_1", "2: generation_2", "3: generation_10",
                                      "4: student"]
    assert list(figure.data[0].y) == [0.7, 0.75, 0.78, 0.79, 0.8]
    assert is_blank(charts.generations(runs.iloc[[2]]))  # a baseline alone is no curve


def test_exits_ring_the_deployed_exit_and_plot_latency_on_the_right() -> None:
    rows = [("exit/test_acc", k, a) for k, a in ((1, 0.6), (2, 0.7), (3, 0.8))]
    rows += [("exit/latency_ms", k, 0.01 * k) for k in (1, 2, 3)] + [("exit/params", k, 100 * k) for k in (1, 2, 3)]
    history = pd.DataFrame(rows, columns=["key", "step", "value"])
    figure = charts.exits(history, chosen=2)
    bars, latency = figure.data
    assert list(bars.x) == ["exit 1", "exit 2", "exit 3"] and list(bars.y) == [0.6, 0.7, 0.8]
    assert list(bars.marker.line.width) == [0, 3, 0] and "200 params" in bars.text[1]
    assert latency.yaxis == "y2" and list(latency.y) == pytest.approx([0.01, 0.02, 0.03])
    assert "exit 3 deployed" in charts.exits(history).layout.title.text  # the deepest by default
    assert is_blank(charts.exits(history[history["key"] == "exit/params"]))


def test_kd_loss_vs_accuracy_puts_the_loss_left_and_accuracies_right() -> None:
    runs = chain_table()[lambda f: f["tags.kd.role"].isin(["teacher", "baseline", "student"])]
    history = pd.DataFrame(
        [("r-student", "train/loss_kd", step, 1.0 / (step + 1), 0) for step in range(3)]
        + [("r-student", "val/acc", step, 0.5 + step / 10, 0) for step in range(3)]
        + [("r-baseline", "val/acc", step, 0.55 + step / 10, 0) for step in range(3)]
        + [("r-teacher", "train/loss_kd", 0, 9.0, 0)],  # not the student's: never drawn
        columns=["run_id", "key", "step", "value", "timestamp"])
    figure = charts.kd_loss_vs_accuracy(history, runs)
    assert [t.name for t in figure.data] == ["student KD loss", "student val accuracy", "baseline val accuracy"]
    assert list(figure.data[0].y) == pytest.approx([1.0, 0.5, 1 / 3])
    assert [t.yaxis for t in figure.data] == [None, "y2", "y2"]
    assert list(figure.data[2].y) == pytest.approx([0.55, 0.65, 0.75])
    assert figure.layout.yaxis2.overlaying == "y" and figure.layout.yaxis2.side == "right"
    assert figure.layout.yaxis.title.text == "train/loss_kd"


@pytest.mark.parametrize("build", [
    lambda: charts.curves(pd.DataFrame(), pd.DataFrame(), "val/acc"),
    lambda: charts.ratio_bars(pd.DataFrame(columns=["study_id", "ratio_teacher", "ratio_baseline"])),
    lambda: charts.entropy_histograms({}),
    lambda: charts.reliability_diagram({"student": (np.zeros((0, 3)), np.zeros(0))}),
    lambda: charts.compression_frontier(pd.DataFrame()),
    lambda: charts.parallel_coordinates(pd.DataFrame()),
    lambda: charts.per_class_accuracy(pd.DataFrame({"tags.kd.role": ["student"]})),
    lambda: charts.confusion_matrix(np.zeros((0, 3)), np.zeros(0)),
    lambda: charts.role_bars(pd.DataFrame(), "metrics.test/acc", "Test accuracy"),
    lambda: charts.role_bars(pd.DataFrame({"tags.kd.role": ["student"], "metrics.test/acc": [np.nan]}),
                             "metrics.test/acc", "Test accuracy"),
    lambda: charts.chain_accuracy(pd.DataFrame()),
    lambda: charts.chain_accuracy(pd.DataFrame({"tags.kd.role": ["baseline"], "metrics.val/best_acc": [0.7]})),
    lambda: charts.kd_loss_vs_accuracy(pd.DataFrame(), pd.DataFrame()),
    lambda: charts.kd_loss_vs_accuracy(pd.DataFrame(columns=["run_id", "key", "step", "value"]),
                                       pd.DataFrame({"run_id": ["r"], "tags.kd.role": ["student"]})),
], ids=["curves", "ratio_bars", "entropy", "reliability", "frontier", "parallel", "per_class", "confusion",
        "role_bars", "role_bars_nan", "chain", "chain_baseline_only", "kd_loss", "kd_loss_no_curve"])
def test_missing_data_gives_a_no_data_figure(build) -> None:
    assert is_blank(build())


def test_param_diff_of_nothing_is_an_empty_frame() -> None:
    assert charts.param_diff(pd.DataFrame()).empty


def bars_of(figure) -> dict[str, tuple[float, str]]:
    """Bar category -> (height, trace name) of a bar chart."""
    return {x: (y, trace.name) for trace in figure.data if trace.type == "bar"
            for x, y in zip(trace.x, trace.y, strict=True)}


def test_grouped_accuracy_means_each_method_and_colours_by_knowledge() -> None:
    studies = pd.DataFrame({"method": ["kd", "kd", "rkd", "fitnet"], "knowledge": ["response", "response",
                            "relation", "feature"], "student_acc": [0.8, 0.9, 0.7, 0.75], "baseline_acc": [0.72] * 4})
    figure = charts.grouped_accuracy(studies, "method")
    bars = bars_of(figure)
    assert bars["kd"] == (pytest.approx(0.85), "response") and bars["rkd"] == (0.7, "relation")
    spread = [t for t in figure.data if t.error_y.array is not None]
    assert [list(t.x) for t in spread] == [["kd"]]  # rkd and fitnet are one study each: no error bar
    assert spread[0].error_y.array[0] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    by_type = charts.grouped_accuracy(studies, "knowledge")
    assert sorted(bars_of(by_type)) == ["feature", "relation", "response"]
    assert by_type.layout.title.text == "Student accuracy by knowledge type"
    assert is_blank(charts.grouped_accuracy(studies.iloc[:0], "method"))


def test_grouped_accuracy_over_seeds_draws_the_t_interval_of_each_mean_not_the_std() -> None:
    studies = pd.DataFrame({"method": ["kd", "kd", "kd", "rkd"], "knowledge": ["response"] * 3 + ["relation"],
                            "student_acc": [0.8, 0.9, 0.85, 0.7]})
    figure = charts.grouped_accuracy(studies, "method", interval=True)
    spread = [t for t in figure.data if t.error_y.array is not None]
    assert [list(t.x) for t in spread] == [["kd"]] and spread[0].name == "± 95% interval"
    t_975_2 = 4.302652729911275  # t quantile at 0.975 with 2 degrees of freedom
    assert spread[0].error_y.array[0] == pytest.approx(t_975_2 * np.std([0.8, 0.9, 0.85], ddof=1) / math.sqrt(3))
    assert figure.layout.yaxis.title.text == "student test accuracy (± 95% interval)"


def test_grouped_accuracy_tells_the_mechanisms_of_one_method_apart() -> None:
    studies = pd.DataFrame({"method": ["kd", "kd", "kd"], "mechanism": ["offline", "progressive", "offline"],
                            "knowledge": ["response"] * 3, "student_acc": [0.8, 0.7, 0.9]})
    figure = charts.grouped_accuracy(studies, "method")
    assert figure.layout.title.text == "Student accuracy by method and mechanism"
    bars = bars_of(figure)
    assert set(bars) == {"kd · offline", "kd · progressive"}
    assert bars["kd · offline"][0] == pytest.approx(0.85) and bars["kd · progressive"][0] == pytest.approx(0.7)
    with_spread = {x for t in figure.data if t.error_y.array is not None for x in t.x}
    assert with_spread == {"kd · offline"}  # the progressive bar is one study: no error bar, not a zero one
    assert figure.layout.yaxis.tickformat == ".1%"


def many_series(studies: int = 5, roles: tuple[str, ...] = ("teacher", "assistant_1", "student", "baseline"),
                n: int = 60) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Predictions of every role of several studies: 20 series by default, each a little differently sure."""
    rng = np.random.default_rng(0)
    series = {}
    for s in range(studies):
        for role in roles:
            probs = rng.dirichlet(np.ones(4) * (0.3 + s / 5), size=n)
            series[f"study {s}{charts.SEP}{role}"] = (probs, rng.integers(0, 4, size=n))
    return series


def test_prediction_charts_tell_twenty_series_apart_with_the_legend_below() -> None:
    series = many_series()
    entropy = charts.entropy_histograms({k: v[0] for k, v in series.items()})
    reliability = charts.reliability_diagram(series)
    for figure in (entropy, reliability):
        lines = [t for t in figure.data if t.name != "perfect calibration"]
        assert len(lines) == 20
        styles = {(t.line.color, t.line.dash, t.marker.symbol) for t in lines}
        assert len(styles) == 20  # every series its own colour, dash and symbol
        by_role = {}
        for t in lines:
            by_role.setdefault(t.name.split(charts.SEP)[1].split(" (")[0], set()).add(t.line.color)
        assert all(len(colors) == 1 for colors in by_role.values())  # colour = role, in every study
        assert by_role["student"] == {charts.ROLE_COLORS["student"]}
        assert figure.layout.legend.orientation == "h" and figure.layout.legend.y < 0  # below, not beside
        assert figure.layout.height > charts.BASE_HEIGHT  # taller by the legend's rows: the plot keeps its size
    one_role_each = charts.study_styles([f"study {i}" for i in range(20)])
    assert len(set(one_role_each.values())) == 20  # twenty studies of one role each: twenty (dash, symbol) pairs


def test_reliability_markers_grow_with_their_bins_and_names_carry_the_ece() -> None:
    series = many_series(studies=1, roles=("student",), n=400)
    figure = charts.reliability_diagram(series)
    diagonal, student = figure.data
    assert diagonal.name == "perfect calibration" and list(diagonal.x) == [0, 1] and list(diagonal.y) == [0, 1]
    _, ece = charts.calibration(*series["study 0 · student"])
    assert student.name == f"study 0 · student (ECE {ece:.1%})"
    sizes, counts = np.asarray(student.marker.size), np.asarray(student.customdata)
    assert len(set(counts)) > 1 and list(np.argsort(sizes, kind="stable")) == list(np.argsort(counts, kind="stable"))
    assert sizes.max() > 2 * sizes.min()


def test_role_colors_keep_each_role_one_colour_in_chain_order() -> None:
    colors = charts.role_colors(["student", "assistant_2", "teacher", "assistant_1", "peer_1"])
    assert colors["teacher"] == charts.ROLE_COLORS["teacher"] and colors["student"] == charts.ROLE_COLORS["student"]
    assert [colors[r] for r in ("assistant_1", "assistant_2")] == charts.OTHER_COLORS[:2]
    assert len(set(colors.values())) == 5
