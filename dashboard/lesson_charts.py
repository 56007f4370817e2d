"""Charts of the Learn pages: pure builders, arrays and frames in, plotly Figures out (no Streamlit here)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import OTHER_COLORS, ROLE_COLORS, empty
from dashboard.text import chart


def soft_labels(q: np.ndarray, target: int, temperature: float) -> go.Figure:
    """One example's softened teacher distribution: the true class in the teacher's colour, the rest grey."""
    colors = [ROLE_COLORS["teacher"] if k == target else ROLE_COLORS["baseline"] for k in range(len(q))]
    figure = go.Figure(go.Bar(x=[str(k) for k in range(len(q))], y=q, marker_color=colors,
                              hovertemplate="class %{x}: %{y:.3f}<extra></extra>"))
    figure.update_layout(title=f"The teacher's soft labels at T = {temperature:g}", xaxis_title="class",
                         yaxis_title="probability", yaxis_range=[0, 1], xaxis_type="category")
    return figure


def entropy_against_temperature(temperatures: np.ndarray, example: np.ndarray, mean: np.ndarray,
                                chosen: float, ceiling: float) -> go.Figure:
    """Entropy of the softened teacher against T, for one example and on average, with ln K above."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=temperatures, y=example, name="this example", line_color=ROLE_COLORS["student"]))
    figure.add_trace(go.Scatter(x=temperatures, y=mean, name="test-split mean", line_color=ROLE_COLORS["teacher"]))
    figure.add_hline(y=ceiling, line_dash="dot", annotation_text="ln K (uniform)", line_color="grey")
    figure.add_vline(x=chosen, line_dash="dash", line_color="grey")
    figure.update_layout(title="Entropy of the soft labels against T", xaxis_title="temperature T",
                         yaxis_title="entropy (nats)", xaxis_type="log",
                         xaxis_tickvals=[0.5, 1, 2, 4, 8, 20], xaxis_ticktext=["0.5", "1", "2", "4", "8", "20"])
    return figure


def size_against_accuracy(points: pd.DataFrame) -> go.Figure:
    """Students' parameters against test accuracy, alone (baseline) and distilled, per dataset.

    ``points`` has columns dataset, params, baseline, student, label."""
    if points.empty:
        return empty("Student size against accuracy")
    figure = go.Figure()
    for i, (dataset, group) in enumerate(points.groupby("dataset")):
        group = group.sort_values("params")
        for role, symbol in (("baseline", "circle-open"), ("student", "circle")):
            figure.add_trace(go.Scatter(
                x=group["params"], y=group[role], mode="markers", name=f"{chart(dataset)} · {role}",
                marker={"symbol": symbol, "size": 9, "color": OTHER_COLORS[i % len(OTHER_COLORS)]},
                text=group["label"].map(chart),
                hovertemplate="%{text}<br>%{x:,} parameters: %{y:.1%}<extra></extra>"))
    figure.update_layout(title="Student size against accuracy: alone (open) and distilled (filled)",
                         xaxis_title="student parameters", xaxis_type="log", yaxis_title="test accuracy",
                         yaxis_tickformat=".0%")
    return figure


def gap_zones(points: pd.DataFrame, zones: list[tuple[float, float, str]]) -> go.Figure:
    """Teacher / baseline performance ratio against the gain of distillation, over the survey's zones.

    ``points`` has columns ratio, gain (points), label; ``zones`` are (low, high, text) bands of the ratio."""
    figure = go.Figure()
    high = max([z[1] for z in zones if math.isfinite(z[1])] + [float(points["ratio"].max()) * 1.1
                                                               if not points.empty else 0])
    for i, (low, top, text) in enumerate(zones):
        top = top if math.isfinite(top) else max(high, low * 1.5)
        figure.add_vrect(x0=low, x1=top, fillcolor=OTHER_COLORS[i % len(OTHER_COLORS)], opacity=0.12,
                         line_width=0, annotation_text=text, annotation_position="top left")
    if not points.empty:
        figure.add_trace(go.Scatter(x=points["ratio"], y=points["gain"], mode="markers",
                                    text=points["label"].map(chart),
                                    marker={"size": 10, "color": ROLE_COLORS["student"]}, name="study",
                                    hovertemplate="%{text}<br>gap %{x:.2f}x, gain %{y:+.1f} points<extra></extra>"))
    figure.add_hline(y=0, line_color="grey", line_dash="dot")
    figure.update_layout(title="Capacity gap against what distillation gained", xaxis_title="teacher / baseline "
                         "test accuracy", yaxis_title="student − baseline (points)", showlegend=False)
    return figure
