"""Pure builders for the Sweep page: a sweep's per-seed accuracies in, gains per cell and plotly Figures out.

The unit is the paired gain student - baseline (same seed, same initialisation and batch order), in accuracy
points. A cell is one value of the axes a chart shows; the axes it does not show are either fixed (the rows
were filtered before) or averaged: per seed, the accuracies of the cell's points are averaged first, then the
seeds give the interval (:func:`kdcore.seed_stats.paired_difference`), so seeds stay the unit of replication.
A cell of one point has exactly that point's interval. No Streamlit calls here.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import LEGEND_BELOW, OTHER_COLORS, empty
from dashboard.text import chart
from kdcore.seed_stats import paired_difference

GAIN_SCALE = "RdBu"  # diverging: red loses to the baseline, blue beats it, white is no gain
NEAR_ZERO = "≈0"  # the mark of a cell whose interval contains 0: it cannot be told from its baseline
MIN_FILL = 0.5  # a heatmap when the points fill at least this share of the grid their values span
LOG_SPAN = 20  # a numeric axis whose positive values span this factor or more is drawn on a log scale
GAIN_AXIS = "gain over the baseline (accuracy points)"
CELL_COLUMNS = ["mean", "low", "high", "n", "verdict", "near_zero", "points"]


def value_text(value: Any) -> str:
    """An axis value as a label shows it: numbers to 4 significant digits, YAML's true/false, lists as JSON."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def points_text(fraction: float | None) -> str:
    """A gain (a difference of fractions) in accuracy points with its sign: 0.0123 -> "+1.2"."""
    return "-" if fraction is None or math.isnan(fraction) else f"{100 * fraction:+.1f}"


def interval_text(low: float | None, high: float | None) -> str:
    """An interval of a gain in accuracy points, e.g. "[-0.3, +2.7]"; "-" where there is none (one seed)."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "-"
    return f"[{points_text(low)}, {points_text(high)}]"


def ordered(values: pd.Series) -> list[Any]:
    """The distinct values of an axis in reading order: numerically when every one is a number, else as text."""
    distinct = list({value_text(v): v for v in values}.values())  # by text: a list value is not hashable
    if all(_number(v) for v in distinct):
        return sorted(distinct, key=float)
    return sorted(distinct, key=value_text)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def cells(seeds: pd.DataFrame, shown: list[str], fixed: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per combination of the ``shown`` axes: its mean gain, interval, seeds and verdict.

    ``seeds`` has one row per (point, seed): the axis columns, ``point``, ``seed``, ``student`` and ``baseline``.
    Rows are first kept where the ``fixed`` axes have their value; every other axis not shown is averaged.
    """
    rows = seeds
    for axis, value in (fixed or {}).items():
        rows = rows[rows[axis].map(value_text) == value_text(value)]
    if rows.empty:
        return pd.DataFrame(columns=[*shown, *CELL_COLUMNS])
    groups = rows.groupby([rows[axis].map(value_text) for axis in shown], sort=False) if shown else [(None, rows)]
    found = []
    for _, cell in groups:
        per_seed = cell.groupby("seed")[["student", "baseline"]].mean()  # other axes averaged within each seed
        diff = paired_difference(per_seed["student"], per_seed["baseline"])
        found.append({**{axis: cell[axis].iloc[0] for axis in shown}, "mean": diff.mean, "low": diff.low,
                      "high": diff.high, "n": diff.n, "verdict": diff.verdict,
                      "near_zero": diff.low is None or diff.low <= 0 <= diff.high,
                      "points": ", ".join(dict.fromkeys(cell["point"]))})
    return pd.DataFrame(found, columns=[*shown, *CELL_COLUMNS])


def fills_grid(table: pd.DataFrame, x: str, y: str) -> bool:
    """Whether the cells fill enough of the grid their x and y values span to read as a heatmap; random draws,
    whose values do not repeat, fill almost none of it and read better as a scatter."""
    if table.empty:
        return False
    return len(table) >= MIN_FILL * table[x].map(value_text).nunique() * table[y].map(value_text).nunique()


def _title(text: str, others: str) -> str:
    return f"{text}<br><sup>{chart(others)}</sup>" if others else text


def _hover(table: pd.DataFrame) -> list[str]:
    return [f"gain {points_text(row['mean'])} pts {interval_text(row['low'], row['high'])}<br>"
            f"{chart(row['verdict'])} ({row['n']} seed{'s' if row['n'] != 1 else ''}; {chart(row['points'])})"
            for _, row in table.iterrows()]


def _limit(table: pd.DataFrame) -> float:
    """The colour scale's half-range in points: symmetric around 0, so white always means no gain."""
    largest = (100 * table["mean"].abs()).max()
    return float(largest) if largest and math.isfinite(largest) else 1.0


def gain_map(table: pd.DataFrame, x: str, y: str, others: str = "") -> go.Figure:
    """The gain over two axes: a heatmap of the cells when they fill the grid, else a scatter of them;
    ``others`` says what became of the axes not shown (in the subtitle)."""
    title = "Gain over the baseline (pts)"
    if table.empty:
        return empty(title, "no point with a finished study")
    figure = heatmap(table, x, y) if fills_grid(table, x, y) else scatter(table, x, y)
    figure.update_layout(title=_title(title, others), xaxis_title=chart(x), yaxis_title=chart(y))
    return figure


def heatmap(table: pd.DataFrame, x: str, y: str) -> go.Figure:
    """A cell per (x, y) value, coloured by the mean gain (diverging, centred at 0), its text the gain and the
    ≈0 mark where the interval contains 0."""
    xs, ys = ordered(table[x]), ordered(table[y])
    at = {(value_text(a), value_text(b)): i for i, (a, b) in enumerate(zip(table[x], table[y], strict=True))}
    z, text, hover = ([[None] * len(xs) for _ in ys] for _ in range(3))
    hovers = _hover(table)
    for j, b in enumerate(ys):
        for i, a in enumerate(xs):
            k = at.get((value_text(a), value_text(b)))
            if k is None:
                continue
            row = table.iloc[k]
            z[j][i] = 100 * row["mean"]
            text[j][i] = points_text(row["mean"]) + (f"<br>{NEAR_ZERO}" if row["near_zero"] else "")
            hover[j][i] = hovers[k]
    limit = _limit(table)
    figure = go.Figure(go.Heatmap(
        x=[chart(value_text(v)) for v in xs], y=[chart(value_text(v)) for v in ys], z=z, text=text,
        texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
        colorscale=GAIN_SCALE, zmid=0, zmin=-limit, zmax=limit, xgap=2, ygap=2,
        colorbar={"title": {"text": "gain (pts)"}, "tickformat": "+.1f"}))
    figure.update_xaxes(type="category")
    figure.update_yaxes(type="category")
    return figure


def scatter(table: pd.DataFrame, x: str, y: str) -> go.Figure:
    """A marker per cell at its (x, y) values, coloured by the mean gain; an open marker where the interval
    contains 0."""
    limit = _limit(table)
    figure = go.Figure(go.Scatter(
        x=_axis_values(table[x]), y=_axis_values(table[y]), mode="markers+text",
        text=[points_text(m) + (f" {NEAR_ZERO}" if near else "") for m, near in zip(table["mean"], table["near_zero"],
                                                                                     strict=True)],
        textposition="top center", customdata=_hover(table), hovertemplate="%{customdata}<extra></extra>",
        marker={"size": 16, "color": 100 * table["mean"], "colorscale": GAIN_SCALE, "cmid": 0, "cmin": -limit,
                "cmax": limit, "symbol": ["circle-open" if near else "circle" for near in table["near_zero"]],
                "line": {"width": 2}, "colorbar": {"title": {"text": "gain (pts)"}, "tickformat": "+.1f"}},
        showlegend=False))
    _scale(figure, table[x], "x")
    _scale(figure, table[y], "y")
    return figure


def _axis_values(values: pd.Series) -> list[Any]:
    """Numbers stay numbers (a continuous axis); anything else is shown as its text."""
    return list(values) if all(_number(v) for v in values) else [chart(value_text(v)) for v in values]


def _scale(figure: go.Figure, values: pd.Series, axis: str) -> None:
    """A log axis for positive numbers spanning ``LOG_SPAN`` or more (learning rates), a category axis for text."""
    update = figure.update_xaxes if axis == "x" else figure.update_yaxes
    if not all(_number(v) for v in values):
        update(type="category", categoryorder="array", categoryarray=[chart(value_text(v)) for v in ordered(values)])
    elif min(values) > 0 and max(values) / min(values) >= LOG_SPAN:
        update(type="log")


def gain_line(table: pd.DataFrame, x: str, by: str | None = None, others: str = "") -> go.Figure:
    """The mean gain along one axis with its interval as a band, one line per value of ``by`` (if any), and
    the zero line a gain must clear."""
    title = f"Gain along {chart(x)}"
    if table.empty:
        return empty(title, "no point with a finished study")
    figure = go.Figure()
    groups = [(None, table)] if by is None else [(v, table[table[by].map(value_text) == value_text(v)])
                                                 for v in ordered(table[by])]
    for i, (value, group) in enumerate(groups):
        name = f"{chart(by)}={chart(value_text(value))}" if by is not None else "mean gain"
        _line(figure, group, x, name, OTHER_COLORS[i % len(OTHER_COLORS)] if by is not None else "#4C78A8")
    figure.add_hline(y=0, line={"color": "#555", "width": 1, "dash": "dot"})
    _scale(figure, table[x], "x")
    figure.update_layout(title=_title(title, others), xaxis_title=chart(x), yaxis_title=GAIN_AXIS,
                         yaxis_tickformat="+.1f", legend=LEGEND_BELOW, showlegend=by is not None)
    return figure


def _faint(hex_color: str) -> str:
    """The colour of a line, faint, for its band."""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},0.18)"


def _line(figure: go.Figure, group: pd.DataFrame, x: str, name: str, color: str) -> None:
    """One mean line with its interval band (a closed shape); points without an interval add none to it."""
    order = [value_text(v) for v in ordered(group[x])]
    group = group.assign(_at=group[x].map(value_text).map(order.index)).sort_values("_at")
    xs = _axis_values(group[x])
    banded = group[group["low"].notna()]
    if len(banded):
        bx = _axis_values(banded[x])
        figure.add_trace(go.Scatter(x=bx + bx[::-1], y=list(100 * banded["high"]) + list(100 * banded["low"])[::-1],
                                    mode="lines", fill="toself", fillcolor=_faint(color), line={"width": 0},
                                    hoverinfo="skip", showlegend=False, legendgroup=name, name=f"{name} interval"))
    figure.add_trace(go.Scatter(x=xs, y=list(100 * group["mean"]), mode="lines+markers", name=name,
                                legendgroup=name, line={"color": color}, customdata=_hover(group),
                                hovertemplate="%{customdata}<extra></extra>",
                                marker={"symbol": ["circle-open" if near else "circle" for near in group["near_zero"]],
                                        "size": 9, "line": {"width": 2, "color": color}}))
