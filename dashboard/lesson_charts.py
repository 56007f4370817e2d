"""Charts of the Learn pages: pure builders, arrays and frames in, plotly Figures out (no Streamlit here)."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import LEGEND_BELOW, OTHER_COLORS, ROLE_COLORS, empty
from dashboard.numbers import PLOTLY_PERCENT, PLOTLY_POINTS, PLOTLY_RATIO
from dashboard.text import chart


def soft_labels(q: np.ndarray, target: int, temperature: float) -> go.Figure:
    """One example's softened teacher distribution: the true class in the teacher's colour, the rest grey, each bar
    labelled with its probability (readable without hovering)."""
    colors = [ROLE_COLORS["teacher"] if k == target else ROLE_COLORS["baseline"] for k in range(len(q))]
    figure = go.Figure(go.Bar(x=[str(k) for k in range(len(q))], y=q, marker_color=colors,
                              text=[f"{v:.0%}" if v >= 0.005 else "" for v in q], textposition="outside",
                              hovertemplate=f"class %{{x}}: %{{y:{PLOTLY_PERCENT}}}<extra></extra>"))
    figure.update_layout(title=f"The teacher's soft labels at T = {temperature:g}", xaxis_title="class",
                         yaxis_title="probability", yaxis_range=[0, 1.1], yaxis_tickformat=".0%",
                         xaxis_type="category")
    return figure


def example_input(x: np.ndarray, title: str) -> go.Figure:
    """One input as its model sees it: a grey (1, H, W) or colour (3, H, W) picture with square pixels, or the
    curve of each channel of a (C, L) signal; a blank figure for any other shape."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 3 and x.shape[0] in (1, 3):
        return _picture(x, title)
    if x.ndim in (1, 2):
        figure = go.Figure([go.Scatter(y=channel, mode="lines", name=f"channel {c}", showlegend=len(x) > 1)
                            for c, channel in enumerate(np.atleast_2d(x))])
        figure.update_layout(title=title, xaxis_title="position", yaxis_title="value", height=300,
                             margin={"l": 40, "r": 10})
        return figure
    return empty(title, f"an input of shape {x.shape} is not drawn")


def _picture(x: np.ndarray, title: str) -> go.Figure:
    if x.shape[0] == 1:  # ink dark on light, like the digit on paper
        trace = go.Heatmap(z=x[0], colorscale="Greys", showscale=False, hoverinfo="skip")
    else:
        low, high = float(x.min()), float(x.max())
        rgb = (x - low) / (high - low) if high > low else np.zeros_like(x)
        trace = go.Image(z=(rgb.transpose(1, 2, 0) * 255).astype(np.uint8), hoverinfo="skip")
    figure = go.Figure(trace)
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    figure.update_layout(title=title, height=320, margin={"l": 10, "r": 10, "t": 50, "b": 10})
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
                         yaxis_title="entropy (nats)", xaxis_type="log", legend=LEGEND_BELOW,
                         xaxis_tickvals=[0.5, 1, 2, 4, 8, 20], xaxis_ticktext=["0.5", "1", "2", "4", "8", "20"])
    return figure


def error_bars(points: pd.DataFrame, half: str | None = None, low: str | None = None,
               high: str | None = None, mean: str | None = None) -> dict | None:
    """Plotly error bars from a half-width column, or from the bounds ``low``/``high`` around ``mean``; None
    where ``points`` lacks them. A NaN (one seed: no interval) draws no bar."""
    if half is not None and half in points:
        return {"type": "data", "array": points[half].tolist(), "visible": True, "thickness": 1.5}
    if low is not None and high is not None and {low, high, mean} <= set(points.columns):
        return {"type": "data", "symmetric": False, "visible": True, "thickness": 1.5,
                "array": (points[high] - points[mean]).tolist(), "arrayminus": (points[mean] - points[low]).tolist()}
    return None


def size_against_accuracy(points: pd.DataFrame) -> go.Figure:
    """Students' parameters against test accuracy, alone (baseline) and distilled, per dataset, with the 95%
    interval over seeds as error bars where ``points`` has one.

    ``points`` has columns dataset, params, baseline, student, label and, optionally, the half-widths
    baseline_half and student_half (NaN: one seed, no bar)."""
    if points.empty:
        return empty("Student size against accuracy")
    figure = go.Figure()
    for i, (dataset, group) in enumerate(points.groupby("dataset")):
        group = group.sort_values("params")
        for role, symbol in (("baseline", "circle-open"), ("student", "circle")):
            figure.add_trace(go.Scatter(
                x=group["params"], y=group[role], mode="markers", name=f"{chart(dataset)} · {role}",
                marker={"symbol": symbol, "size": 9, "color": OTHER_COLORS[i % len(OTHER_COLORS)]},
                error_y=error_bars(group, half=f"{role}_half"), text=group["label"].map(chart),
                hovertemplate="%{text}<br>%{x:,} parameters: %{y:.1%}<extra></extra>"))
    figure.update_layout(title="Student size against accuracy: alone (open) and distilled (filled), mean over seeds",
                         xaxis_title="student parameters", xaxis_type="log", yaxis_title="test accuracy",
                         yaxis_tickformat=".0%")
    return figure


ZONE_SHADES = ["#B279A2", "#C6DBEF", "#6BAED6", "#2171B5"]  # learn together (another mechanism), then darker
# with every assistant the survey adds; none of them says good or bad
PROVOKED_COLOR = "#6E6E6E"
LOWEST_RATIO = 0.8  # the gap axis starts here at the latest, so the narrow "learn together" zone has room for its label
OUTLIER_FENCE = 3.0  # interquartile ranges beyond the middle half of the other studies: drawn at the edge


def gain_range(points: pd.DataFrame) -> tuple[float, float]:
    """The gains the y axis shows: every study within :data:`OUTLIER_FENCE` interquartile ranges of the middle
    half of the studies that were not provoked, so that a few collapses do not flatten the rest."""
    usual = points.loc[~points["provoked"], "gain"] if points["provoked"].any() and (~points["provoked"]).any() \
        else points["gain"]
    q1, q3 = np.percentile(usual, [25, 75])
    fence = OUTLIER_FENCE * max(q3 - q1, 1.0)
    inside = points["gain"].between(q1 - fence, q3 + fence)
    low, high = float(points.loc[inside, "gain"].min()), float(points.loc[inside, "gain"].max())
    pad = max(0.08 * (high - low), 1.0)
    return min(low, 0.0) - pad, max(high, 0.0) + pad


def _zone_bands(figure: go.Figure, zones: list[tuple[float, float, str]], low: float, high: float) -> None:
    """The survey's zones as shaded bands, each labelled inside its top edge with what it recommends (a zone's
    text: lines split at newlines, wrapped to fit the band)."""
    for i, (start, stop, text) in enumerate(zones):
        start, stop = max(start, low), min(stop, high)
        if start >= stop:
            continue
        figure.add_vrect(x0=start, x1=stop, fillcolor=ZONE_SHADES[i % len(ZONE_SHADES)], opacity=0.22, line_width=0,
                         layer="below")
        lines = [wrapped for line in text.split("\n") for wrapped in textwrap.wrap(line, 20)]
        figure.add_annotation(x=math.log10(math.sqrt(start * stop)), y=1, xref="x", yref="paper", yanchor="top",
                              text="<br>".join(lines), showarrow=False, font={"size": 13},
                              bgcolor="rgba(255,255,255,0.7)")


def _study_markers(figure: go.Figure, points: pd.DataFrame, name: str, symbol: str, color: str) -> None:
    if points.empty:
        return
    figure.add_trace(go.Scatter(
        x=points["ratio"], y=points["gain"], mode="markers", name=name, text=points["label"].map(chart),
        marker={"size": 11, "symbol": symbol, "color": color, "line": {"width": 1, "color": "white"}},
        error_y=error_bars(points, low="gain_low", high="gain_high", mean="gain"),
        error_x=error_bars(points, half="ratio_half"),
        hovertemplate=f"%{{text}}<br>gap %{{x:{PLOTLY_RATIO}}}x, gain %{{y:{PLOTLY_POINTS}}} points<extra></extra>"))


def _off_scale(figure: go.Figure, points: pd.DataFrame, low: float, high: float) -> None:
    """Studies beyond the y range: a triangle at the edge they pass, with an arrow label giving their gain."""
    for i, (_, row) in enumerate(points.sort_values("ratio").iterrows()):
        below = row["gain"] < low
        edge = low if below else high
        figure.add_trace(go.Scatter(
            x=[row["ratio"]], y=[edge], mode="markers", showlegend=False, text=[chart(row["label"])],
            marker={"size": 13, "symbol": "triangle-down" if below else "triangle-up",
                    "color": PROVOKED_COLOR if row["provoked"] else ROLE_COLORS["student"]},
            hovertemplate=f"%{{text}}<br>gap %{{x:{PLOTLY_RATIO}}}x, gain {row['gain']:{PLOTLY_POINTS}} points "
                          "(off the scale)<extra></extra>"))
        figure.add_annotation(x=math.log10(row["ratio"]), y=edge, text=f"{row['gain']:{PLOTLY_POINTS}} pts",
                              showarrow=True, arrowhead=2, ax=0, ay=(-1 if below else 1) * (28 + 18 * (i % 3)),
                              font={"size": 12}, bgcolor="rgba(255,255,255,0.8)")


def gap_zones(points: pd.DataFrame, zones: list[tuple[float, float, str]]) -> go.Figure:
    """Teacher / baseline performance ratio (log axis) against the gain of distillation, over the survey's zones
    labelled with what it recommends there. Studies provoked to fail are marked apart (their loss is the failure
    they show, not the gap), and studies far outside the others' spread sit at the edge with their value.

    ``points`` has columns ratio, gain (points), label and, optionally, provoked and the 95% interval over seeds:
    gain_low and gain_high (points) and ratio_half, drawn as error bars (NaN: one seed, no bar); ``zones`` are
    (low, high, text) bands of the ratio, the text's lines split at newlines."""
    title = "Capacity gap against what distillation gained"
    if points.empty:
        return empty(title)
    points = points.assign(provoked=points["provoked"].astype(bool) if "provoked" in points else False)
    left = min(float(points["ratio"].min()) * 0.96, LOWEST_RATIO)
    right = max(float(points["ratio"].max()) * 1.06, zones[-1][0] * 1.25 if zones else 0.0)
    figure = go.Figure()
    _zone_bands(figure, zones, left, right)
    low, high = gain_range(points)
    inside = points["gain"].between(low, high)
    _study_markers(figure, points[inside & ~points["provoked"]], "study", "circle", ROLE_COLORS["student"])
    _study_markers(figure, points[inside & points["provoked"]], "provoked failure (made to fail on purpose)",
                   "x", PROVOKED_COLOR)
    _off_scale(figure, points[~inside], low, high)
    figure.add_hline(y=0, line_color="grey", line_dash="dot")
    ticks = [t for t in (0.9, 1, 1.1, 1.5, 2, 3, 4, 6, 10) if left <= t <= right]
    figure.update_layout(title=title, xaxis_title="teacher / baseline test accuracy (log scale)",
                         yaxis_title="student − baseline (points)", xaxis_type="log",
                         xaxis_range=[math.log10(left), math.log10(right)], xaxis_tickvals=ticks,
                         xaxis_ticktext=[f"{t:g}x" for t in ticks], yaxis_range=[low, high], height=520,
                         legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
                         margin={"b": 110})
    return figure
