"""Pure chart builders: DataFrames and arrays in, plotly Figures out. No Streamlit here.

Every builder returns a figure with a "no data" note instead of raising when its input is empty,
so a page can always place it.
"""

from __future__ import annotations

import math
import re
from itertools import pairwise

import numpy as np
import pandas as pd
import plotly.graph_objects as go

ROLE_COLORS = {"teacher": "#4C78A8", "baseline": "#9D9D9D", "student": "#F58518"}
FALLBACK_COLORS = ["#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D", "#EECA3B"]
GATE_LINES = {0.95: "95% of teacher", 1.05: "105% of baseline"}
SEED_SUFFIX = re.compile(r"[ ,]*seed ?\d+$")  # "... T4 seed0" -> "... T4"
SEED_FREE = {"params.train.seed", "params.tracking.study_name"}
HYPERPARAMETERS = ["params.distill.temperature", "params.distill.alpha", "params.teacher.width",
                   "params.student.width", "params.train.lr"]


def empty(title: str, message: str = "no data") -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(title=title, xaxis_visible=False, yaxis_visible=False)
    return figure


def color_for(name: str, i: int) -> str:
    return ROLE_COLORS.get(name, FALLBACK_COLORS[i % len(FALLBACK_COLORS)])


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _labels(runs: pd.DataFrame) -> pd.Series:
    if "label" in runs:
        return runs["label"]
    return runs["tags.kd.study_id"].str[:8] + " · " + runs["tags.kd.role"]


def seed_groups(runs: pd.DataFrame) -> pd.Series:
    """A group key per run: runs whose params differ only in the seed (and name) share it, per role."""
    params = sorted(c for c in runs.columns if c.startswith("params.") and c not in SEED_FREE)
    key = runs[params].astype(str).agg("|".join, axis=1) if params else pd.Series("", index=runs.index)
    return key + "|" + runs["tags.kd.role"].astype(str)


def curves(history: pd.DataFrame, runs: pd.DataFrame, metric: str, aggregate_seeds: bool = True) -> go.Figure:
    """One metric per epoch; seeds of one config become a mean line with a ± std band."""
    title = f"{metric} per epoch"
    data = history[history["key"] == metric] if not history.empty else history
    if data.empty or runs.empty:
        return empty(title)
    runs = runs.assign(_label=_labels(runs), _group=seed_groups(runs) if aggregate_seeds else runs["run_id"])
    figure = go.Figure()
    for i, (_, members) in enumerate(runs.groupby("_group", sort=False)):
        table = data[data["run_id"].isin(members["run_id"])].pivot_table(index="step", columns="run_id",
                                                                         values="value")
        if table.empty:
            continue
        role = members["tags.kd.role"].iloc[0]
        color = color_for(role, i)
        label = members["_label"].iloc[0]
        if len(members) > 1:
            study = SEED_SUFFIX.sub("", label.rpartition(" · ")[0] or label)
            label = f"{study} · {role} ({len(members)} seeds)"
            mean, std = table.mean(axis=1), table.std(axis=1).fillna(0)
            steps = list(table.index)
            figure.add_trace(go.Scatter(
                x=steps + steps[::-1], y=list(mean + std) + list((mean - std)[::-1]), fill="toself",
                fillcolor=_rgba(color, 0.2), line={"width": 0}, hoverinfo="skip", showlegend=False,
                name=f"{label} ± std"))
            figure.add_trace(go.Scatter(x=steps, y=mean, mode="lines", name=label, line={"color": color}))
        else:
            series = table.iloc[:, 0].dropna()
            figure.add_trace(go.Scatter(x=series.index, y=series.values, mode="lines+markers", name=label,
                                        line={"color": color}, marker={"size": 4}))
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric, hovermode="x unified")
    return figure


def ratio_bars(studies: pd.DataFrame) -> go.Figure:
    """Student/teacher and student/baseline accuracy per study, against the 95% and 105% gate lines."""
    title = "Accuracy ratios"
    if studies.empty or not {"ratio_teacher", "ratio_baseline"} <= set(studies.columns):
        return empty(title)
    names = studies["label"] if "label" in studies else studies.get("name", studies["study_id"])
    figure = go.Figure([
        go.Bar(name="student / teacher", x=names, y=studies["ratio_teacher"], marker_color=ROLE_COLORS["teacher"]),
        go.Bar(name="student / baseline", x=names, y=studies["ratio_baseline"],
               marker_color=ROLE_COLORS["baseline"]),
    ])
    for value, text in GATE_LINES.items():
        figure.add_hline(y=value, line_dash="dash", annotation_text=text, annotation_position="top left")
    low = min(0.8, float(np.nanmin(studies[["ratio_teacher", "ratio_baseline"]].to_numpy(dtype=float))) - 0.02)
    figure.update_layout(title=title, barmode="group", yaxis_title="ratio", yaxis_range=[low, 1.12])
    return figure


def entropies(probs: np.ndarray) -> np.ndarray:
    """Per-sample predictive entropy in nats."""
    p = np.clip(np.asarray(probs, dtype=float), 1e-12, 1)
    return -(p * np.log(p)).sum(axis=1)


def entropy_histograms(probs_by_label: dict[str, np.ndarray]) -> go.Figure:
    """How confident each model is: per-sample entropy, with ln K, a uniform guess, marked."""
    title = "Predictive entropy (test)"
    if not probs_by_label:
        return empty(title)
    figure = go.Figure()
    classes = next(iter(probs_by_label.values())).shape[1]
    for i, (label, probs) in enumerate(probs_by_label.items()):
        figure.add_trace(go.Histogram(x=entropies(probs), name=label, opacity=0.6, nbinsx=40,
                                      marker_color=color_for(label.rsplit(" · ", 1)[-1], i)))
    figure.add_vline(x=math.log(classes), line_dash="dash", annotation_text=f"ln K = {math.log(classes):.2f}")
    figure.update_layout(title=title, barmode="overlay", xaxis_title="entropy (nats)", yaxis_title="samples")
    return figure


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> tuple[pd.DataFrame, float]:
    """Per-bin confidence and accuracy, and the ECE (same bins as kdcore.metrics: (lo, hi])."""
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels)
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    correct = (predicted == labels).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    rows, ece = [], 0.0
    for lo, hi in pairwise(edges):
        mask = (confidence > lo) & (confidence <= hi)
        if mask.any():
            acc, conf = correct[mask].mean(), confidence[mask].mean()
            ece += mask.mean() * abs(acc - conf)
            rows.append({"confidence": conf, "accuracy": acc, "count": int(mask.sum())})
    return pd.DataFrame(rows, columns=["confidence", "accuracy", "count"]), float(ece)


def reliability_diagram(preds_by_label: dict[str, tuple[np.ndarray, np.ndarray]], bins: int = 15) -> go.Figure:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    title = "Reliability (test)"
    if not preds_by_label:
        return empty(title)
    figure = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                                   line={"dash": "dot", "color": "#888"})])
    for i, (label, (probs, labels)) in enumerate(preds_by_label.items()):
        table, ece = calibration(probs, labels, bins)
        figure.add_trace(go.Scatter(x=table["confidence"], y=table["accuracy"], mode="lines+markers",
                                    name=f"{label} (ECE {ece:.3f})",
                                    line={"color": color_for(label.rsplit(" · ", 1)[-1], i)}))
    figure.update_layout(title=title, xaxis_title="confidence", yaxis_title="accuracy",
                         xaxis_range=[0, 1], yaxis_range=[0, 1.02])
    return figure


def compression_frontier(runs: pd.DataFrame, x: str = "metrics.model/params") -> go.Figure:
    """Test accuracy against size (or latency): each study's teacher-to-student step is one line."""
    title = "Accuracy against " + ("parameters" if "params" in x else "latency")
    needed = {x, "metrics.test/acc", "tags.kd.role"}
    if runs.empty or not needed <= set(runs.columns):
        return empty(title)
    runs = runs.dropna(subset=[x, "metrics.test/acc"]).assign(_label=_labels(runs))
    figure = go.Figure()
    for _, members in runs.groupby("tags.kd.study_id", sort=False):
        members = members.sort_values(x, ascending=False)
        figure.add_trace(go.Scatter(x=members[x], y=members["metrics.test/acc"], mode="lines",
                                    line={"color": "#ccc", "width": 1}, hoverinfo="skip", showlegend=False))
    for i, (role, members) in enumerate(runs.groupby("tags.kd.role", sort=False)):
        figure.add_trace(go.Scatter(x=members[x], y=members["metrics.test/acc"], mode="markers", name=role,
                                    text=members["_label"], hovertemplate="%{text}<br>%{x:.3g}, %{y:.3f}",
                                    marker={"size": 10, "color": color_for(role, i)}))
    figure.update_layout(title=title, xaxis_type="log", xaxis_title=x.removeprefix("metrics."),
                         yaxis_title="test accuracy")
    return figure


def parallel_coordinates(table: pd.DataFrame, color: str = "ratio_teacher") -> go.Figure:
    """Hyperparameters side by side, each line a study coloured by its accuracy ratio."""
    title = f"Hyperparameters, coloured by {color}"
    if table.empty or color not in table:
        return empty(title)
    dimensions = []
    for column in HYPERPARAMETERS:
        if column in table:
            values = pd.to_numeric(table[column], errors="coerce")
            if values.notna().all() and values.nunique() > 1:
                dimensions.append({"label": column.removeprefix("params."), "values": values})
    if not dimensions:
        return empty(title, "the selected studies share every hyperparameter")
    ratio = pd.to_numeric(table[color], errors="coerce")
    dimensions.append({"label": color, "values": ratio})
    figure = go.Figure(go.Parcoords(line={"color": ratio, "colorscale": "Viridis", "showscale": True},
                                    dimensions=dimensions))
    figure.update_layout(title=title)
    return figure


def param_diff(table: pd.DataFrame) -> pd.DataFrame:
    """Only the params that differ between rows, without the ``params.`` prefix."""
    columns = [c for c in table.columns if c.startswith("params.")]
    differing = [c for c in columns if table[c].astype(str).nunique() > 1]
    return table[differing].rename(columns=lambda c: c.removeprefix("params."))


def per_class_accuracy(runs: pd.DataFrame) -> go.Figure:
    """Test accuracy within each class, per role."""
    title = "Per-class test accuracy"
    columns = sorted((c for c in runs.columns if c.startswith("metrics.test/acc_class_")),
                     key=lambda c: int(c.rsplit("_", 1)[1]))
    if runs.empty or not columns:
        return empty(title)
    classes = [c.rsplit("_", 1)[1] for c in columns]
    figure = go.Figure([
        go.Bar(name=str(run["tags.kd.role"]), x=classes, y=run[columns].astype(float).to_numpy(),
               marker_color=color_for(str(run["tags.kd.role"]), i))
        for i, (_, run) in enumerate(runs.iterrows())
    ])
    figure.update_layout(title=title, barmode="group", xaxis_title="class", yaxis_title="accuracy",
                         yaxis_range=[0, 1.02])
    return figure


def confusion_matrix(probs: np.ndarray, labels: np.ndarray, title: str = "") -> go.Figure:
    """Counts of true class (rows) against predicted class (columns) on the test split."""
    name = f"Confusion matrix {title}".strip()
    if len(labels) == 0:
        return empty(name)
    classes = probs.shape[1]
    counts = np.zeros((classes, classes), dtype=int)
    np.add.at(counts, (np.asarray(labels), np.asarray(probs).argmax(axis=1)), 1)
    figure = go.Figure(go.Heatmap(z=counts, x=list(range(classes)), y=list(range(classes)), colorscale="Blues",
                                  text=counts, texttemplate="%{text}"))
    figure.update_layout(title=name, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    return figure
