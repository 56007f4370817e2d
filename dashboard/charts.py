"""Pure chart builders: DataFrames and arrays in, plotly Figures out. No Streamlit calls here.

The inputs are the frames of :mod:`kdcore.tracking` (``list_studies``, ``list_runs``, ``metric_history``)
and the arrays of ``load_predictions``, so every builder is unit-tested on small hand-made tables. A
builder with nothing to draw returns a figure with a "no data" note instead of raising, so a page can
always place it. Colour always means role (one colour per role, the same in every study); where several
studies share a chart, the line dash and the marker symbol tell the studies apart, and the legend sits
below the plot, so twenty series leave the plot its width. Numbers take the formats of
:mod:`dashboard.numbers`. Store text (names, roles, tags) reaches plotly through :func:`dashboard.text.chart`,
so plotly's own markup in it (``<a href>``, ``<br>``) is shown as written.
"""

from __future__ import annotations

import math
import re
import textwrap
from itertools import pairwise

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.numbers import PLOTLY_COUNT, PLOTLY_PERCENT, PLOTLY_RATIO, percent
from dashboard.text import chart
from kdcore.seed_stats import mean_interval
from kdcore.tracker import role_key

OTHER_COLORS = ["#54A24B", "#E45756", "#72B7B2", "#B279A2", "#EECA3B", "#9D755D"]  # assistants, peers, free labels
ROLE_COLORS = {"teacher": "#4C78A8", "baseline": "#9D9D9D", "student": "#F58518", "other": OTHER_COLORS[0]}
CRITICAL = "#D62728"  # a stage that failed its threshold
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "star", "cross"]  # 7 and 6 dashes: 42 distinct pairs
SEP = " · "  # the dashboard labels runs "<study name> · <role>"
# The survey's quality gate: the student keeps >= 95% of the teacher's accuracy or beats the baseline by >= 5%.
GATE_LINES = {0.95: "95% of teacher", 1.05: "105% of baseline"}
SEED_FREE = {"params.train.seed", "params.tracking.study_name"}  # what may differ between seeds of one config
SEED_SUFFIX = re.compile(r"[\s,_·-]*seed\s*\d+$", re.IGNORECASE)  # "digits ... T4 seed1" -> "digits ... T4",
# and a sweep's "distill.temperature=4 · seed 1" -> "distill.temperature=4"
INTERVAL = "95% interval"  # what error bars over seeds show: the t-interval of the mean (kdcore.seed_stats)
HYPERPARAMETERS = {"params.distill.temperature": "temperature", "params.distill.alpha": "alpha",
                   "params.teacher.width": "teacher width", "params.student.width": "student width",
                   "params.train.lr": "learning rate"}  # the parallel coordinates' axes, by their readable names
MIN_PARALLEL_ROWS = 3  # fewer lines than this are read better in the "What differs" table
RATIO_NAMES = {"ratio_teacher": "student / teacher", "ratio_baseline": "student / baseline"}
LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0, "itemsizing": "constant",
                "maxheight": 1}  # wraps into rows under the plot instead of taking its width, never scrolls
LEGEND_ABOVE = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1}  # clear of long ticks
BASE_HEIGHT, LEGEND_ROW_HEIGHT = 450, 20  # every legend row adds its height: a long "<study> · <role>" fills a row
TICK_WIDTH = 20  # characters per line of a long category label
CLASS_COLUMN = re.compile(r"^metrics\.test/acc_class_(\d+)$")


# --- shared helpers ---------------------------------------------------------------------------------
def empty(title: str, message: str = "no data") -> go.Figure:
    """A blank figure that says why it is blank: pages place it like any other chart."""
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                          font={"size": 14})
    figure.update_layout(title=title, xaxis_visible=False, yaxis_visible=False)
    return figure


def blank_reason(figure: go.Figure) -> str | None:
    """Why a figure from :func:`empty` is blank (its note), so a page can say it in words instead; None when
    the figure draws something."""
    if figure.data or not figure.layout.annotations:
        return None
    return figure.layout.annotations[0].text


def role_color(role: str, i: int = 0) -> str:
    """The role's colour; other roles (assistants, peers) and free labels take the i-th spare colour."""
    return ROLE_COLORS.get(role) or OTHER_COLORS[i % len(OTHER_COLORS)]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _has(frame: pd.DataFrame | None, *columns: str) -> bool:
    return frame is not None and not frame.empty and set(columns) <= set(frame.columns)


def _split(label: str) -> tuple[str, str]:
    """``"<study> · <role>"`` -> (study, role); a bare label is its own role."""
    study, _, role = str(label).rpartition(SEP)
    return study, role


def _raw_roles(runs: pd.DataFrame) -> pd.Series:
    if "tags.kd.role" in runs:
        return runs["tags.kd.role"].fillna("run").astype(str)
    return pd.Series("run", index=runs.index)


def _roles(runs: pd.DataFrame) -> pd.Series:
    """Each run's role as plotly text (``run`` where it has none)."""
    return _raw_roles(runs).map(chart)


def _role_rank(roles: pd.Series) -> np.ndarray:
    """Integer sort keys in :func:`role_key` order (numpy sorts numbers, not tuples)."""
    keys = [role_key(r) for r in roles]
    rank = {key: i for i, key in enumerate(sorted(set(keys)))}
    return np.array([rank[key] for key in keys], dtype=int)


def _study_labels(runs: pd.DataFrame) -> pd.Series:
    """The study's display name per run (plotly text): ``label`` without its role suffix, else the short study id."""
    roles = _raw_roles(runs)
    if "label" in runs:
        labels = runs["label"].astype(str)
        return pd.Series([chart(lab.removesuffix(SEP + role)) for lab, role in zip(labels, roles, strict=True)],
                         index=runs.index)
    if "tags.kd.study_id" in runs:
        return runs["tags.kd.study_id"].astype(str).str[:8]
    return runs["run_id"].astype(str).str[:8]


def _dash_by_study(studies: pd.Series) -> dict[str, str]:
    return {study: DASHES[i % len(DASHES)] for i, study in enumerate(dict.fromkeys(studies))}


def study_styles(studies: list[str]) -> dict[str, tuple[str, str]]:
    """(line dash, marker symbol) per study in order of appearance: distinct for up to 42 studies."""
    return {study: (DASHES[i % len(DASHES)], SYMBOLS[i % len(SYMBOLS)])
            for i, study in enumerate(dict.fromkeys(studies))}


def role_colors(roles: list[str]) -> dict[str, str]:
    """One colour per role, the same in every study: teacher, baseline and student their own, every other role
    (assistant_k, peer_k, generation_k, ...) a spare colour in chain order."""
    others = sorted({r for r in roles if r not in ROLE_COLORS}, key=role_key)
    spare = {role: OTHER_COLORS[i % len(OTHER_COLORS)] for i, role in enumerate(others)}
    return {role: ROLE_COLORS.get(role) or spare[role] for role in roles}


def legend_below(figure: go.Figure, entries: int) -> go.Figure:
    """A horizontal legend under the plot, the figure taller by its rows, so the plot keeps its width and height."""
    figure.update_layout(legend=LEGEND_BELOW, height=BASE_HEIGHT + LEGEND_ROW_HEIGHT * entries)
    return figure


def _wrapped(label: str) -> str:
    """A long category label over several lines, so bars keep their width and labels stay level."""
    lines = textwrap.wrap(label, TICK_WIDTH, break_long_words=False, break_on_hyphens=False)  # keeps &lt; whole
    return "<br>".join(lines) or label


def _unique_names(names: pd.Series, ids: pd.Series) -> list[str]:
    """Display names, with the short id added where two rows share one (bars of one name would overlap)."""
    names = names.astype(str)
    repeated = names.duplicated(keep=False)
    return [f"{n} ({str(i)[:8]})" if r else n for n, i, r in zip(names, ids, repeated, strict=True)]


# --- curves -----------------------------------------------------------------------------------------
def seed_groups(runs: pd.DataFrame) -> pd.Series:
    """A group key per run: runs of one role whose params differ only in the seed (and name) share it."""
    params = sorted(c for c in runs.columns if c.startswith("params.") and c not in SEED_FREE)
    key = runs[params].astype(str).agg("|".join, axis=1) if params else pd.Series("", index=runs.index)
    return key + "|" + _roles(runs)


def curves(history: pd.DataFrame, runs: pd.DataFrame, metric: str, aggregate_seeds: bool = True) -> go.Figure:
    """One metric per epoch and run, so training of teacher, baseline and student can be compared.

    With ``aggregate_seeds`` the seeds of one config and role become one mean line with a mean ± std
    band (sample std), so the spread between seeds shows whether a difference between studies is real.
    """
    title = f"{metric} per epoch"
    if not _has(history, "run_id", "key", "step", "value") or not _has(runs, "run_id"):
        return empty(title)
    data = history[history["key"] == metric].dropna(subset=["value"])
    runs = runs[runs["run_id"].isin(data["run_id"])]
    if runs.empty:
        return empty(title)
    studies = _study_labels(runs)
    runs = runs.assign(_role=_roles(runs), _study=studies,
                       _config=studies.map(lambda s: SEED_SUFFIX.sub("", s)) if aggregate_seeds else studies,
                       _group=seed_groups(runs) if aggregate_seeds else runs["run_id"])
    dashes = _dash_by_study(runs["_config"])  # one dash per study (per config when seeds are aggregated)
    first_seen = runs["_config"].map({c: i for i, c in enumerate(dashes)})
    runs = runs.iloc[np.lexsort((_role_rank(runs["_role"]), first_seen))]  # legend: per study, teacher first
    colors = role_colors(list(runs["_role"]))
    percent = metric.endswith("acc")
    hover = f"%{{y:{PLOTLY_PERCENT if percent else '.3f'}}}"
    figure = go.Figure()
    for _, members in runs.groupby("_group", sort=False):
        table = data[data["run_id"].isin(members["run_id"])].pivot_table(index="step", columns="run_id",
                                                                         values="value")  # (steps, runs)
        role, study, config = members[["_role", "_study", "_config"]].iloc[0]
        line = {"color": colors[role], "dash": dashes[config]}
        if len(members) == 1:
            series = table.iloc[:, 0].dropna()
            figure.add_trace(go.Scatter(x=series.index, y=series.to_numpy(), mode="lines+markers",
                                        name=f"{study}{SEP}{role}", marker={"size": 4}, line=line,
                                        hovertemplate=hover))
            continue
        name = f"{config}{SEP}{role} ({len(members)} seeds)"
        mean, std = table.mean(axis=1), table.std(axis=1).fillna(0.0)
        steps = list(table.index)
        figure.add_trace(go.Scatter(x=steps + steps[::-1], y=[*(mean + std), *(mean - std)[::-1]], fill="toself",
                                    fillcolor=_rgba(line["color"], 0.2), line={"width": 0}, hoverinfo="skip",
                                    name=f"{name} ± std", legendgroup=name, showlegend=False))
        figure.add_trace(go.Scatter(x=steps, y=mean.to_numpy(), mode="lines", name=name, legendgroup=name,
                                    line=line, hovertemplate=hover))
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric, hovermode="x unified",
                         yaxis_tickformat=PLOTLY_PERCENT if percent else None)
    return legend_below(figure, sum(trace.showlegend is not False for trace in figure.data))


# --- study-level comparisons --------------------------------------------------------------------------
def ratio_bars(studies: pd.DataFrame) -> go.Figure:
    """Student/teacher and student/baseline accuracy per study, against the 95% and 105% gate lines.

    A row may stand for a configuration over seeds: its ratios are then means, and optional ``<ratio>_half``
    columns (half-widths of the 95% interval; NaN for one seed) become error bars."""
    title = "Accuracy ratios"
    present = [c for c in ("ratio_teacher", "ratio_baseline") if studies is not None and c in studies]
    if not present or studies.empty:
        return empty(title)
    values = studies[present].apply(pd.to_numeric, errors="coerce")
    if values.isna().all().all():
        return empty(title)
    halves = pd.DataFrame({c: pd.to_numeric(studies[f"{c}_half"], errors="coerce") if f"{c}_half" in studies
                           else np.nan for c in present}, index=studies.index)
    name_column = next((c for c in ("label", "name", "study_id") if c in studies), None)
    names = studies[name_column] if name_column else pd.Series(studies.index.astype(str), index=studies.index)
    ids = studies["study_id"] if "study_id" in studies else pd.Series(studies.index.astype(str), index=studies.index)
    x = [_wrapped(name) for name in _unique_names(names.fillna(ids).map(chart), ids)]
    figure = go.Figure([_ratio_bar(c, x, values[c], halves[c]) for c in present])
    for value, text in GATE_LINES.items():
        figure.add_hline(y=value, line_dash="dash", line_color="#555", annotation_text=text,
                         annotation_position="top left")
    low = min(0.8, float(np.nanmin((values - halves.fillna(0)).to_numpy())) - 0.03)
    high = max(1.12, float(np.nanmax((values + halves.fillna(0)).to_numpy())) + 0.03)
    axis = f"accuracy ratio (± {INTERVAL} over seeds)" if halves.notna().any().any() else "accuracy ratio"
    figure.update_layout(title=title, barmode="group", xaxis_title="study", yaxis_title=axis,
                         yaxis_range=[low, high], yaxis_tickformat=PLOTLY_RATIO, legend=LEGEND_ABOVE)
    return figure


def _ratio_bar(column: str, x: list[str], values: pd.Series, halves: pd.Series) -> go.Bar:
    """One ratio's bars; with error bars (the 95% interval) where a bar is a mean over seeds."""
    hover = f"%{{x}}<br>%{{y:{PLOTLY_RATIO}}}"
    bar = go.Bar(name=RATIO_NAMES[column], x=x, y=values.to_numpy(),
                 marker_color=ROLE_COLORS[column.removeprefix("ratio_")], hovertemplate=hover)
    if halves.notna().any():
        bar.update(error_y={"type": "data", "array": halves.to_numpy(), "visible": True, "color": "#333"},
                   customdata=halves.to_numpy(),
                   hovertemplate=[hover if math.isnan(h) else f"{hover} ± %{{customdata:{PLOTLY_RATIO}}} ({INTERVAL})"
                                  for h in halves])
    return bar


def compression_frontier(runs: pd.DataFrame, x: str = "metrics.model/params") -> go.Figure:
    """Test accuracy against size (or latency), log x: what each study's teacher -> student step costs."""
    axis = {"metrics.model/params": "parameters", "metrics.model/latency_ms": "latency (ms per sample)"}
    x_format = PLOTLY_COUNT if x == "metrics.model/params" else ".3g"
    title = "Accuracy against " + axis.get(x, x.removeprefix("metrics.")).split(" (")[0]
    if not _has(runs, x, "metrics.test/acc"):
        return empty(title)
    runs = runs.assign(_x=pd.to_numeric(runs[x], errors="coerce"),
                       _y=pd.to_numeric(runs["metrics.test/acc"], errors="coerce"), _role=_roles(runs))
    runs = runs[(runs["_x"] > 0) & runs["_y"].notna()]  # a log axis has no place for 0
    if runs.empty:
        return empty(title)
    names = runs["label"] if "label" in runs else runs["name"] if "name" in runs else runs["run_id"]
    runs = runs.assign(_name=names.map(chart))
    figure = go.Figure()
    if "tags.kd.study_id" in runs:
        for _, members in runs.groupby("tags.kd.study_id", sort=False):
            teachers, students = members[members["_role"] == "teacher"], members[members["_role"] == "student"]
            if teachers.empty or students.empty:
                continue
            teacher = teachers.iloc[0]
            xs = [v for s in students["_x"] for v in (teacher["_x"], s, None)]
            ys = [v for s in students["_y"] for v in (teacher["_y"], s, None)]
            figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#bbb", "width": 1},
                                        hoverinfo="skip", showlegend=False, name=f"{teacher['_name']} -> student"))
    ordered = sorted(runs["_role"].unique(), key=role_key)
    for i, role in enumerate(ordered):
        members = runs[runs["_role"] == role]
        figure.add_trace(go.Scatter(x=members["_x"], y=members["_y"], mode="markers", name=role,
                                    text=members["_name"], marker={"size": 10, "color": role_color(role, i)},
                                    hovertemplate=f"%{{text}}<br>%{{x:{x_format}}} {axis.get(x, '')}"
                                                  f"<br>test acc %{{y:{PLOTLY_PERCENT}}}<extra>{role}</extra>"))
    figure.update_layout(title=title, xaxis_type="log", xaxis_title=axis.get(x, x.removeprefix("metrics.")),
                         yaxis_title="test accuracy", yaxis_tickformat=PLOTLY_PERCENT)
    return figure


def parallel_coordinates(table: pd.DataFrame, color: str = "ratio_teacher") -> go.Figure:
    """Hyperparameters side by side, one line per row coloured by ``color``: which settings go with a good ratio.

    Params arrive as strings; a column missing from the table, with a missing or non-numeric value, or
    the same in every row says nothing here and is left out. Fewer than three rows, or rows that share
    every hyperparameter, give a note instead: two lines are read better side by side in a table.
    """
    name = RATIO_NAMES.get(color, color)
    title = f"Hyperparameters, coloured by {name} accuracy" if color in RATIO_NAMES else f"Hyperparameters, by {name}"
    if not _has(table, color):
        return empty(title)
    ratio = pd.to_numeric(table[color], errors="coerce")
    table, ratio = table[ratio.notna()], ratio[ratio.notna()]
    if table.empty:
        return empty(title)
    dimensions = []
    for column, label in HYPERPARAMETERS.items():
        if column in table:
            values = pd.to_numeric(table[column], errors="coerce")
            if values.notna().all() and values.nunique() > 1:
                dimensions.append({"label": label, "values": values.to_numpy()})
    if len(table) < MIN_PARALLEL_ROWS or not dimensions:
        return empty(title, f"needs {MIN_PARALLEL_ROWS} or more studies that differ in "
                            f"{', '.join(HYPERPARAMETERS.values())}")
    dimensions.append({"label": name, "values": ratio.to_numpy(), "tickformat": PLOTLY_RATIO})
    figure = go.Figure(go.Parcoords(dimensions=dimensions, line={"color": ratio.to_numpy(), "colorscale": "Viridis",
                                                                  "showscale": True,
                                                                  "colorbar": {"title": {"text": name},
                                                                               "tickformat": PLOTLY_RATIO}}))
    figure.update_layout(title=title, margin={"t": 120, "l": 60, "r": 60})  # axis labels sit above the plot
    return figure


def param_diff(table: pd.DataFrame) -> pd.DataFrame:
    """The ``params.*`` columns whose values differ between rows, prefix stripped: what sets studies apart.

    Rows keep the table's index, or are indexed by ``label`` (else ``name``) when the index is a plain
    range. A parameter missing in some rows counts as differing. No columns when nothing differs.
    """
    if table is None or table.empty:
        return pd.DataFrame()
    if isinstance(table.index, pd.RangeIndex):
        key = next((c for c in ("label", "name") if c in table), None)
        table = table.set_index(key) if key else table
    columns = [c for c in table.columns if str(c).startswith("params.")]
    differing = [c for c in columns if table[c].astype(str).nunique() > 1]
    return table[differing].rename(columns=lambda c: c.removeprefix("params."))


def per_class_accuracy(runs: pd.DataFrame, num_classes: int | None = None) -> go.Figure:
    """Test accuracy within each class per role: shows the classes distillation helps or hurts."""
    title = "Per-class test accuracy"
    if runs is None or runs.empty:
        return empty(title)
    found = {int(m.group(1)): c for c in runs.columns if (m := CLASS_COLUMN.match(str(c)))}
    classes = list(range(num_classes)) if num_classes is not None else sorted(found)
    if not found or not classes:
        return empty(title)
    runs = runs.assign(_role=_roles(runs))
    runs = runs.iloc[np.argsort(_role_rank(runs["_role"]), kind="stable")]
    repeated = runs["_role"].duplicated(keep=False).any()  # several studies: name bars by their full label
    names = runs["label"].map(chart) if repeated and "label" in runs else runs["_role"]
    figure = go.Figure()
    for i, ((_, run), name) in enumerate(zip(runs.iterrows(), names, strict=True)):
        y = [pd.to_numeric(run[found[k]], errors="coerce") if k in found else np.nan for k in classes]
        figure.add_trace(go.Bar(name=str(name), x=[str(k) for k in classes], y=y,
                                marker_color=role_color(run["_role"], i)))
    figure.update_layout(title=title, barmode="group", xaxis_title="class", yaxis_title="test accuracy",
                         xaxis_type="category", yaxis_range=[0, 1.02])
    return figure


# --- per-sample predictions -------------------------------------------------------------------------
def entropies(probs: np.ndarray) -> np.ndarray:
    """Per-sample predictive entropy in nats, as kdcore.metrics.mean_entropy computes it: (N, K) -> (N,)."""
    p = np.asarray(probs, dtype=float)
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)


def _valid_probs(probs: object) -> bool:
    return probs is not None and np.ndim(probs) == 2 and len(probs) > 0


SPLIT_NAMES = {"val": "validation", "test": "test"}


def _series_styles(labels: list[str]) -> dict[str, tuple[str, str, str]]:
    """(colour, dash, symbol) per ``"<study> · <role>"`` label: colour by role, dash and symbol by study."""
    parts = {label: _split(label) for label in labels}
    colors = role_colors([role for _, role in parts.values()])
    styles = study_styles([study for study, _ in parts.values()])
    return {label: (colors[role], *styles[study]) for label, (study, role) in parts.items()}


ENTROPY_BINS = 40


def entropy_histograms(probs_by_label: dict[str, np.ndarray], split: str = "val") -> go.Figure:
    """How sure each model is: the share of samples per entropy bin on ``split``, one outline per role run
    (outlines stay legible where twenty filled histograms would hide each other), with ln K (a uniform
    guess, the maximum) marked."""
    title = f"Predictive entropy ({SPLIT_NAMES[split]})"
    arrays = {label: np.asarray(p, dtype=float) for label, p in (probs_by_label or {}).items() if _valid_probs(p)}
    if not arrays:
        return empty(title)
    maximum = math.log(max(a.shape[1] for a in arrays.values()))
    edges = np.linspace(0, max(maximum, 1e-6) * (1 + 1 / ENTROPY_BINS), ENTROPY_BINS + 2)  # shared bins
    centres = (edges[:-1] + edges[1:]) / 2
    styles = _series_styles(list(arrays))
    figure = go.Figure()
    for label, probs in arrays.items():
        color, dash, symbol = styles[label]
        counts, _ = np.histogram(entropies(probs), bins=edges)
        figure.add_trace(go.Scatter(
            x=centres, y=counts / counts.sum(), name=chart(label), mode="lines+markers", line_shape="hvh",
            line={"color": color, "dash": dash}, marker={"symbol": symbol, "size": 7, "maxdisplayed": 12},
            customdata=counts, hovertemplate=f"entropy %{{x:.2f}} nats<br>%{{y:{PLOTLY_PERCENT}}} of samples "
                                             f"(%{{customdata:{PLOTLY_COUNT}}})"))
    figure.add_vline(x=maximum, line_dash="dash", line_color="#555",
                     annotation_text=f"ln K = {maximum:.2f} (maximum)", annotation_position="top left")
    figure.update_layout(title=title, xaxis_title="entropy (nats)", yaxis_title="share of samples",
                         yaxis_tickformat=PLOTLY_PERCENT)
    return legend_below(figure, len(arrays))


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> tuple[pd.DataFrame, float]:
    """Per-bin confidence, accuracy and count, and the ECE, as kdcore.metrics.expected_calibration_error:
    ``bins`` equal bins of top-1 confidence over (0, 1] (each ``(lo, hi]``), ``|acc - conf|`` weighted by
    the bin's share of samples (Guo et al. 2017)."""
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels)
    confidence, correct = probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(float)
    rows, ece = [], 0.0
    for lo, hi in pairwise(np.linspace(0, 1, bins + 1)):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            acc, conf = correct[in_bin].mean(), confidence[in_bin].mean()
            ece += in_bin.mean() * abs(acc - conf)
            rows.append({"confidence": conf, "accuracy": acc, "count": int(in_bin.sum())})
    return pd.DataFrame(rows, columns=["confidence", "accuracy", "count"]), float(ece)


MARKER_SIZES = (4, 22)  # a reliability marker for a (nearly) empty bin and for the series' fullest bin


def reliability_diagram(preds_by_label: dict[str, tuple[np.ndarray, np.ndarray]], bins: int = 15,
                        split: str = "val") -> go.Figure:
    """Accuracy against confidence per bin on ``split``, with ECE in each name: above the diagonal is
    underconfident, below it overconfident. A marker's area grows with its bin's count (the fullest bin of
    a series largest), so a point made of three samples does not look as sure as one made of three thousand."""
    title = f"Reliability ({SPLIT_NAMES[split]})"
    series = {label: (np.asarray(p, dtype=float), np.asarray(y)) for label, (p, y) in (preds_by_label or {}).items()
              if _valid_probs(p) and np.ndim(y) == 1 and len(y) == len(p)}
    if not series:
        return empty(title)
    styles = _series_styles(list(series))
    smallest, largest = MARKER_SIZES
    figure = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                                   line={"dash": "dot", "color": "#888"})])
    for label, (probs, labels) in series.items():
        table, ece = calibration(probs, labels, bins)
        color, dash, symbol = styles[label]
        fullness = table["count"] / table["count"].max()
        figure.add_trace(go.Scatter(
            x=table["confidence"], y=table["accuracy"], mode="lines+markers",
            name=f"{chart(label)} (ECE {percent(ece)})",
            customdata=table["count"], line={"color": color, "dash": dash},
            marker={"symbol": symbol, "size": smallest + (largest - smallest) * np.sqrt(fullness), "opacity": 0.8},
            hovertemplate=f"confidence %{{x:{PLOTLY_PERCENT}}}<br>accuracy %{{y:{PLOTLY_PERCENT}}}"
                          f"<br>%{{customdata:{PLOTLY_COUNT}}} samples"))
    figure.update_layout(title=title, xaxis_title="confidence", yaxis_title="accuracy", xaxis_range=[0, 1],
                         yaxis_range=[0, 1.02], xaxis_tickformat=PLOTLY_PERCENT, yaxis_tickformat=PLOTLY_PERCENT)
    return legend_below(figure, len(series) + 1)


def confusion_matrix(probs: np.ndarray, labels: np.ndarray, title: str = "") -> go.Figure:
    """Counts of true class (rows) against top-1 predicted class (columns): which classes get confused."""
    name = f"Confusion matrix: {chart(title)}" if title else "Confusion matrix"
    if not _valid_probs(probs) or labels is None or np.ndim(labels) != 1 or len(labels) != len(probs):
        return empty(name)
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels, dtype=int)
    classes = max(probs.shape[1], int(labels.max()) + 1)
    counts = np.zeros((classes, classes), dtype=int)  # (true, predicted)
    np.add.at(counts, (labels, probs.argmax(axis=1)), 1)
    ticks = [str(k) for k in range(classes)]
    figure = go.Figure(go.Heatmap(z=counts, x=ticks, y=ticks, colorscale="Blues", text=counts, texttemplate="%{text}",
                                  hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    figure.update_layout(title=name, xaxis_title="predicted class", yaxis_title="true class",
                         xaxis_type="category", yaxis_type="category", yaxis_autorange="reversed")
    return figure


# --- evidence of findings -----------------------------------------------------------------------------
def _stage_color(role: str) -> str:
    """Teacher, baseline and student keep their colours; every assistant (or peer) shares the spare one."""
    return ROLE_COLORS.get(role, ROLE_COLORS["other"])


def _by_stage(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per role with a numeric ``metric`` (the first run of each role), in chain order: _role, _value."""
    if not _has(runs, metric):
        return pd.DataFrame(columns=["_role", "_value"])
    table = runs.assign(_role=_roles(runs), _value=pd.to_numeric(runs[metric], errors="coerce"))
    table = table.dropna(subset=["_value"]).drop_duplicates("_role")
    return table.iloc[sorted(range(len(table)), key=lambda i: role_key(table["_role"].iloc[i]))]


def role_bars(runs: pd.DataFrame, metric: str, title: str, lines: dict[float, str] | None = None,
              percent: bool = False) -> go.Figure:
    """One bar per role of a study (chain order), with optional reference lines such as chance (1/K).

    The evidence behind a finding: teacher, baseline and student accuracy for a capacity mismatch,
    their calibration error for overconfidence, accuracy against chance for a cross-modal failure.
    """
    table = _by_stage(runs, metric)
    if table.empty:
        return empty(title)
    axis = metric.removeprefix("metrics.")
    text = [f"{v:.1%}" if percent else f"{v:.3g}" for v in table["_value"]]
    figure = go.Figure(go.Bar(x=table["_role"].tolist(), y=table["_value"].to_numpy(), text=text,
                              textposition="outside", name=axis, showlegend=False,
                              marker_color=[_stage_color(r) for r in table["_role"]]))
    for value, label in (lines or {}).items():
        figure.add_hline(y=value, line_dash="dash", line_color="#555", annotation_text=label,
                         annotation_position="top left")
    top = max([*table["_value"], *(lines or {})])
    figure.update_layout(title=title, xaxis_title="role", yaxis_title=axis, xaxis_type="category",
                         yaxis_tickformat=".0%" if percent else None, yaxis_range=[0, top * 1.15 or 1])
    return figure


def chain_accuracy(runs: pd.DataFrame, keep: float = 0.90) -> go.Figure:
    """Validation accuracy (the selected model's, as the degradation finding reads it) at each stage
    teacher -> assistant_1 -> ... -> student, against ``keep`` times the previous stage (a stage under it
    marks progressive degradation); the teacher and the baseline as reference lines."""
    title = "Accuracy along the chain (validation)"
    table = _by_stage(runs, "metrics.val/best_acc")
    chain = table[table["_role"] != "baseline"]
    if chain.empty:
        return empty(title)
    stages, values = chain["_role"].tolist(), chain["_value"].to_numpy()
    floors = keep * values[:-1]  # what stages 1.. must reach, from the stage before each
    below = [False, *(values[1:] < floors)]
    figure = go.Figure(go.Scatter(x=stages, y=values, mode="lines+markers", name="validation accuracy",
                                  line={"color": "#888"}, hovertemplate="%{x}: %{y:.1%}<extra></extra>",
                                  marker={"size": 12, "color": [CRITICAL if b else _stage_color(r)
                                                                for r, b in zip(stages, below, strict=True)]}))
    if len(stages) > 1:
        figure.add_trace(go.Scatter(x=stages[1:], y=floors, mode="markers", name=f"{keep:.0%} of the previous stage",
                                    marker={"symbol": "line-ew-open", "size": 28, "line": {"width": 2},
                                            "color": "#555"}, hovertemplate="%{x} needs %{y:.1%}<extra></extra>"))
    _reference_lines(figure, table)
    figure.update_layout(title=title, xaxis_title="stage", yaxis_title="validation accuracy",
                         xaxis_type="category", yaxis_tickformat=".0%")
    return figure


def _reference_lines(figure: go.Figure, table: pd.DataFrame) -> None:
    """The teacher's and the baseline's accuracy (the table's values) as horizontal lines, where the study has them."""
    for role, text, position in (("teacher", "teacher", "top right"),
                                 ("baseline", "baseline (student trained alone)", "bottom right")):
        found = table.loc[table["_role"] == role, "_value"]
        if not found.empty:
            figure.add_hline(y=float(found.iloc[0]), line_dash="dot", line_color=ROLE_COLORS[role],
                             annotation_text=text, annotation_position=position)


# --- mechanisms ---------------------------------------------------------------------------------------
def generations(runs: pd.DataFrame) -> go.Figure:
    """Born-again self-distillation: test accuracy across generations, from generation 0 (the baseline,
    trained on labels alone) through generation_k to the student (the last generation)."""
    title = "Accuracy across born-again generations"
    table = _by_stage(runs, "metrics.test/acc")
    table = table[table["_role"].map(lambda r: r in ("baseline", "student") or r.startswith("generation_"))]
    if len(table) < 2:
        return empty(title)
    labels = [f"{i}: {role}" for i, role in enumerate(table["_role"])]
    figure = go.Figure(go.Scatter(x=labels, y=table["_value"].to_numpy(), mode="lines+markers+text",
                                  text=[f"{v:.1%}" for v in table["_value"]], textposition="top center",
                                  marker={"size": 12, "color": [_stage_color(r) for r in table["_role"]]},
                                  line={"color": "#888"}, name="test accuracy", showlegend=False))
    _reference_lines(figure, table[table["_role"] == "baseline"])
    figure.update_layout(title=title, xaxis_title="generation", yaxis_title="test accuracy", xaxis_type="category",
                         yaxis_tickformat=".0%")
    return figure


def exits(history: pd.DataFrame, chosen: int | None = None) -> go.Figure:
    """Deep-to-shallow self-distillation: each exit's test accuracy (left axis) and latency (right axis),
    with its parameter count; the deployed exit is ringed. ``history`` holds the student's ``exit/*``
    metrics, one step per exit."""
    title = "Exits: accuracy against cost"
    if not _has(history, "key", "step", "value"):
        return empty(title)
    table = history.pivot_table(index="step", columns="key", values="value", aggfunc="last").sort_index()
    if "exit/test_acc" not in table:
        return empty(title)
    steps = [int(k) for k in table.index]
    params = table.get("exit/params", pd.Series(np.nan, index=table.index))
    chosen = chosen or steps[-1]
    figure = go.Figure(go.Bar(
        x=[f"exit {k}" for k in steps], y=table["exit/test_acc"].to_numpy(), name="test accuracy",
        text=[f"{a:.1%}<br>{p:,.0f} params" for a, p in zip(table["exit/test_acc"], params, strict=True)],
        textposition="outside", marker_color=[ROLE_COLORS["student"] if k == chosen else OTHER_COLORS[0]
                                              for k in steps],
        marker_line={"width": [3 if k == chosen else 0 for k in steps], "color": "#333"}))
    if "exit/latency_ms" in table:
        figure.add_trace(go.Scatter(x=[f"exit {k}" for k in steps], y=table["exit/latency_ms"].to_numpy(),
                                    mode="lines+markers", yaxis="y2", name="latency ms / sample",
                                    line={"color": "#555", "dash": "dash"}))
    figure.update_layout(title=f"{title} (exit {chosen} deployed)", xaxis_title="exit (after block k)",
                         yaxis_title="test accuracy", yaxis_tickformat=".0%", yaxis_range=[0, 1.15],
                         yaxis2={"title": {"text": "latency ms / sample"}, "overlaying": "y", "side": "right",
                                 "rangemode": "tozero"}, legend={"orientation": "h", "y": -0.2})
    return figure


def kd_loss_vs_accuracy(history: pd.DataFrame, runs: pd.DataFrame) -> go.Figure:
    """The student's KD loss term per epoch (left axis) against its and the baseline's validation accuracy
    (right axis): a KD term that converges while accuracy stays at the baseline's transfers the wrong knowledge."""
    title = "KD loss against accuracy"
    if not _has(history, "run_id", "key", "step", "value") or not _has(runs, "run_id"):
        return empty(title)
    ids = dict(zip(_roles(runs), runs["run_id"], strict=True))

    def series(role: str, key: str) -> pd.DataFrame:
        found = history[(history["run_id"] == ids.get(role)) & (history["key"] == key)].dropna(subset=["value"])
        return found.sort_values("step")

    loss = series("student", "train/loss_kd")
    if loss.empty:
        return empty(title)
    figure = go.Figure(go.Scatter(x=loss["step"], y=loss["value"], mode="lines+markers", name="student KD loss",
                                  line={"color": ROLE_COLORS["student"], "dash": "dash"}))
    for role in ("student", "baseline"):
        acc = series(role, "val/acc")
        if not acc.empty:
            figure.add_trace(go.Scatter(x=acc["step"], y=acc["value"], mode="lines+markers", yaxis="y2",
                                        name=f"{role} val accuracy", line={"color": role_color(role)}))
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title="train/loss_kd", hovermode="x unified",
                         yaxis2={"title": {"text": "val accuracy"}, "overlaying": "y", "side": "right",
                                 "tickformat": ".0%"}, legend={"orientation": "h", "y": -0.2})
    return figure


# --- methods and knowledge types ------------------------------------------------------------------------
KNOWLEDGE_COLORS = {"response": "#4C78A8", "feature": "#54A24B", "relation": "#E45756", "multi": "#B279A2",
                    "none": "#9D9D9D"}


GROUPINGS = {"method": "method · mechanism", "knowledge": "knowledge type"}  # grouped_accuracy's ``by``


def _group_keys(studies: pd.DataFrame, by: str) -> pd.Series:
    """Each study's group: ``"<method> · <mechanism>"`` (kd taught offline and kd along a chain differ), or its
    knowledge type."""
    if by == "method" and "mechanism" in studies:
        return studies["method"].astype(str) + SEP + studies["mechanism"].fillna("?").astype(str)
    return studies[by]


def grouped_accuracy(studies: pd.DataFrame, by: str = "method", interval: bool = False) -> go.Figure:
    """Student test accuracy per method and mechanism, or per knowledge type: the mean over the studies in
    each group, with an error bar where the group has two or more studies (one study has no spread), coloured
    by knowledge type, with the mean baseline as a dotted line. The error bar is the std of the group's
    studies, or with ``interval`` (studies that include seeds of one configuration) the 95% t-interval of
    the group's mean, which says how far the mean itself may be off."""
    title = f"Student accuracy by {GROUPINGS.get(by, by).replace(SEP, ' and ')}"
    if not _has(studies, by, "knowledge", "student_acc"):
        return empty(title)
    table = studies.assign(_acc=pd.to_numeric(studies["student_acc"], errors="coerce"),
                           _group=_group_keys(studies, by)).dropna(subset=["_acc", "_group"])
    if table.empty:
        return empty(title)
    spread = _half_width if interval else "std"
    groups = table.groupby("_group", sort=True).agg(mean=("_acc", "mean"), spread=("_acc", spread),
                                                    n=("_acc", "size"), colour=("knowledge", "first"))
    groups = groups.sort_values("mean", ascending=False)
    groups.index = groups.index.map(chart)
    hover = f"%{{x}}: %{{y:{PLOTLY_PERCENT}}} over %{{customdata:{PLOTLY_COUNT}}} studies<extra></extra>"
    figure = go.Figure()
    for knowledge, rows in groups.groupby("colour", sort=False):
        figure.add_trace(go.Bar(x=rows.index.astype(str), y=rows["mean"], name=chart(knowledge),
                                marker_color=KNOWLEDGE_COLORS.get(str(knowledge), OTHER_COLORS[0]),
                                customdata=rows["n"], hovertemplate=hover))
    name = INTERVAL if interval else "std"
    bars = groups[groups["n"] > 1]
    if not bars.empty:  # error bars on their own trace: a bar of one study gets none, not a zero-height one
        figure.add_trace(go.Scatter(x=bars.index.astype(str), y=bars["mean"], mode="markers", name=f"± {name}",
                                    marker={"size": 0, "color": "#333"}, showlegend=False,
                                    error_y={"type": "data", "array": bars["spread"].to_numpy(), "visible": True,
                                             "color": "#333"},
                                    customdata=bars["spread"],
                                    hovertemplate=f"%{{x}}: {name} ± %{{customdata:{PLOTLY_PERCENT}}}<extra></extra>"))
    if _has(studies, "baseline_acc"):
        baseline = pd.to_numeric(studies["baseline_acc"], errors="coerce").mean()
        if not math.isnan(baseline):
            figure.add_hline(y=baseline, line_dash="dot", line_color=ROLE_COLORS["baseline"],
                             annotation_text="baseline (mean)", annotation_position="bottom right")
    axis = f"student test accuracy (± {INTERVAL})" if interval else "student test accuracy"
    figure.update_layout(title=title, xaxis_title=GROUPINGS.get(by, by), yaxis_title=axis,
                         yaxis_tickformat=PLOTLY_PERCENT, legend_title="knowledge", barmode="overlay",
                         xaxis={"categoryorder": "array", "categoryarray": list(groups.index.astype(str))})
    return figure


def _half_width(values: pd.Series) -> float:
    """Half-width of the 95% t-interval of the mean of ``values`` (NaN for one value)."""
    half = mean_interval(values.to_numpy(dtype=float)).half_width
    return math.nan if half is None else half


# --- what the models see and attend to -----------------------------------------------------------------
def attention_maps(maps: dict[str, np.ndarray], tokens: list[str], title: str = "Attention") -> go.Figure:
    """One heatmap per role, side by side: ``maps`` role -> (T, T) attention probabilities (query rows, key
    columns) of one example, layer and head; ``tokens`` label both axes."""
    if not maps:
        return empty(title, "no attention maps logged")
    from plotly.subplots import make_subplots

    roles = sorted(maps, key=role_key)
    figure = make_subplots(rows=1, cols=len(roles), subplot_titles=[chart(r) for r in roles],
                           horizontal_spacing=0.04)
    ticks = [f"{i}:{chart(t)}" for i, t in enumerate(tokens)]  # positions keep repeated characters apart
    for col, role in enumerate(roles, start=1):
        z = np.asarray(maps[role], dtype=float)
        n = z.shape[-1]
        figure.add_trace(go.Heatmap(z=z, x=ticks[:n], y=ticks[:n], coloraxis="coloraxis",
                                    hovertemplate=f"{chart(role)}: query %{{y}} attends to %{{x}}: "
                                                  "%{z:.2f}<extra></extra>"),
                         row=1, col=col)
        figure.update_yaxes(autorange="reversed", row=1, col=col, showticklabels=col == 1)
    figure.update_layout(title=title, coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1},
                         height=360 + 10 * len(tokens))
    return figure


def paired_views(rgb: np.ndarray, depth: np.ndarray, captions: list[str]) -> go.Figure:
    """Each sample's two views side by side: RGB (k, 3, H, W) in [0, 1] on the top row, its depth map
    (k, 1, H, W), near = dark, on the row below; ``captions`` name each column."""
    k = len(rgb)
    if k == 0:
        return empty("RGB and depth", "no samples")
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=2, cols=k, subplot_titles=captions + [""] * k, vertical_spacing=0.08,
                           horizontal_spacing=0.02)
    for i in range(k):
        image = (np.clip(np.asarray(rgb[i], dtype=float), 0, 1).transpose(1, 2, 0) * 255).astype(np.uint8)
        figure.add_trace(go.Image(z=image, hovertemplate="RGB<extra></extra>"), row=1, col=i + 1)
        figure.add_trace(go.Heatmap(z=np.asarray(depth[i][0], dtype=float), coloraxis="coloraxis",
                                    hovertemplate="depth %{z:.2f}<extra></extra>"), row=2, col=i + 1)
        axis = f"x{k + i + 1}"  # square pixels, like the image above it
        figure.update_yaxes(autorange="reversed", scaleanchor=axis, constrain="domain", row=2, col=i + 1)
        figure.update_xaxes(constrain="domain", row=2, col=i + 1)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(title="The same scenes, as the RGB camera (top) and the depth sensor (bottom) see them",
                         coloraxis={"colorscale": "gray", "cmin": 0, "cmax": 1,
                                    "colorbar": {"title": "distance / far"}}, height=480,
                         margin={"t": 150}, title_y=0.97)
    return figure
