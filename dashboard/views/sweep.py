"""Sweep: one sweep's answer per point, whether distillation beat the baseline, with how sure that is.

The gain of a point is student - baseline test accuracy, paired by seed, with its 95% interval; verdicts are
Holm-corrected across the points, and the best point is chosen on validation only. A heatmap shows the gain
over two axes, a line along one; the axes a chart does not show are averaged or fixed at a chosen value.
The sweep is picked in a select box and kept in the URL (``?sweep=1a2b3c4d``), so other pages link to it.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data, nav, sweeps
from dashboard.sweep_charts import (
    NEAR_ZERO,
    cells,
    gain_line,
    gain_map,
    interval_text,
    ordered,
    points_text,
    value_text,
)
from dashboard.text import md
from kdcore.sweep import HOLM_ALPHA

CHOICE = "sweep_choice"
AVERAGED, FIXED = "averaged", "fixed at a value"
NONE = "none"
BEST_RULE = "the highest mean validation gain (student - baseline best validation accuracy)"
TABLE_COLUMNS = {
    "point": st.column_config.TextColumn("point", pinned=True, width=56),
    "gain": st.column_config.NumberColumn("gain (pts)", format="%+.1f", width=76,
                                          help="Student − baseline test accuracy, mean over seeds, in accuracy points"),
    "interval": st.column_config.TextColumn("95% interval", width=104, help="Of the gain, in accuracy points"),
    "verdict": st.column_config.TextColumn("verdict", width=164, help="From the interval alone"),
    "after Holm": st.column_config.TextColumn("after Holm", width=84, help=f"Helps or hurts only when its "
                                              f"Holm-corrected p-value is below {HOLM_ALPHA}"),
    "studies": st.column_config.LinkColumn("studies", display_text=r"^/(\w+)\?", width=72,
                                           help="Its study in Study detail, or its seeds side by side in Compare"),
    "best": st.column_config.TextColumn("best", width=44, help="The point chosen on validation"),
    "seeds": st.column_config.NumberColumn("seeds", format="%d", width=52),
    "p": st.column_config.NumberColumn("p", format="%.3g", width=60),
    "p Holm": st.column_config.NumberColumn("p Holm", format="%.3g", width=64),
    "validation gain": st.column_config.NumberColumn("val gain (pts)", format="%+.1f", width=96,
                                                     help="What the best point is chosen on"),
}


def empty_state() -> None:
    st.info("No sweeps in this store yet. A sweep runs one study per point of a grid (or of random draws), each "
            "over several seeds, and tells per point whether distillation beat the baseline. Run one with "
            "`kdx sweep examples/sweep_temperature.yaml`, or from the Sweep editor on Launch.")
    nav.link("launch", "Open Launch")


def choose(uri: str, table: pd.DataFrame) -> pd.Series:
    """The sweep select box, newest first; a sweep named in the URL is chosen on arrival."""
    ids = table["sweep_id"].tolist()
    linked = st.query_params.get(sweeps.PARAM)
    if linked and sweeps.resolve(linked, ids) is None:  # a link to a sweep newer than the cache
        data.clear()
        table = sweeps.listing(uri)
        ids = table["sweep_id"].tolist()
    if st.session_state.get(CHOICE) not in ids:
        st.session_state[CHOICE] = sweeps.resolve(linked, ids) or ids[0]
    rows = table.set_index("sweep_id", drop=False)
    sweep_id = st.selectbox("Which sweep", ids, key=CHOICE, format_func=lambda i: label(rows.loc[i], i))
    st.query_params[sweeps.PARAM] = sweep_id[:8]
    return rows.loc[sweep_id]


def label(row: pd.Series, sweep_id: str) -> str:
    """``name · status · 3 finished, 1 failed · 1a2b3c4d``."""
    counts = [f"{row['finished']} finished"] + [f"{row[c]} {c}" for c in sweeps.STATES[1:] if row[c]]
    return f"{row['name']} · {row['status'].lower()} · {', '.join(counts)} · {sweep_id[:8]}"


def progress(sweep: pd.Series, loaded: sweeps.Sweep) -> None:
    """Status, x of n studies finished (n from the sweep file when it can be read), and what became of the rest."""
    found = int(sum(sweep[state] for state in sweeps.STATES))
    total = max(loaded.planned or 0, found, 1)
    parts = [f"{sweep['finished']} of {total} studies finished"]
    parts += [f"{sweep[c]} {c}" for c in sweeps.STATES[1:] if sweep[c]]
    st.markdown(f"**{sweep['status'].lower()}** · `{sweep.name[:8]}` · started "
                f"{pd.Timestamp(sweep['start_time']):%Y-%m-%d %H:%M}")
    st.progress(min(int(sweep["finished"]) / total, 1.0), text=", ".join(parts))
    for problem in loaded.problems:
        st.warning(f"This sweep: {md(problem, 400)}.", icon=":material/report:")
    if sweep["reason"] and sweep["status"] != "RUNNING":
        st.error(f"Sweep {sweep['status'].lower()}: {md(sweep['reason'], 400)}")
    failures(loaded.summary)
    freshness(sweep, loaded)


def failures(summary: dict) -> None:
    """Every failed study with its reason, and how many a search pruned."""
    failed = [f for f in summary.get("failed") or [] if isinstance(f, dict)]
    if failed:
        lines = [f"- **{md(f.get('key'))}** ({_study(f.get('study_id'))}): "
                 f"{md(f.get('reason') or 'no reason recorded', 400)}" for f in failed]
        st.warning(f"**{len(failed)} failed stud{'y' if len(failed) == 1 else 'ies'}**\n\n" + "\n".join(lines),
                   icon=":material/error:")
    pruned = summary.get("pruned") or []
    if pruned:
        st.caption(f"{len(pruned)} stud{'y was' if len(pruned) == 1 else 'ies were'} pruned by the search: stopped "
                   "early, their validation curve behind earlier trials'.")


def _study(study_id: object) -> str:
    return f"study {md(str(study_id)[:8])}" if study_id else "no study"


def freshness(sweep: pd.Series, loaded: sweeps.Sweep) -> None:
    """Where the rows come from when there is no summary yet; a running sweep can be read again."""
    if not loaded.live:
        return
    if sweep["status"] in sweeps.ENDED:
        st.caption("This sweep ended before it wrote its summary; the rows below are computed from its studies.")
        return
    st.caption("The summary is written when the sweep ends; until then the rows below are computed from the "
               "studies finished so far.")
    if st.button("Refresh", icon=":material/refresh:", key="sweep_refresh"):
        data.clear()
        st.rerun()


def holm_statement(summary: dict) -> None:
    """The correction the verdicts went through, and how many points survive it."""
    n = sweeps.tested(summary)
    if not n:
        st.markdown("No point has a p-value yet (that takes two or more seeds whose gains differ), so none is said "
                    "to differ from its baseline.")
        return
    differ = sum(row.get("p_holm") is not None and row.get("holm_verdict") in ("helps", "hurts")
                 for row in summary["points"])
    st.markdown(f"p-values Holm-corrected across {n} point{'s' if n != 1 else ''}; a point differs from its "
                f"baseline only after the correction. **{differ} of {n}** do.")


def best_note(rule: str) -> str:
    """What a best point chosen by ``rule`` (the summary's ``best_rule``) is, and is not."""
    return (f"This is a validation choice: the point with {md(rule, 300)}. Its test gain is reported once, here, and "
            "was never searched on.")


def best(frame: pd.DataFrame, live: bool, rule: str) -> None:
    """The point chosen on validation (so far, while the sweep runs), its test gain with its interval, and what
    that choice means."""
    chosen = frame[frame["best"]]
    with st.container(border=True, key="best_point"):
        if chosen.empty:
            st.markdown("**No best point**: no point has validation numbers, so none is chosen; the test gains below "
                        "are not for picking one.")
            return
        row = chosen.iloc[0]
        st.markdown(f"**Best point{' so far' if live else ''}, chosen on validation: {md(row['point'])}** · "
                    f"{md(row['label'])}")
        gain, interval, validation = st.columns(3)
        gain.metric("Test gain", f"{points_text(row['mean'])} pts")
        interval.metric("95% interval (pts)", interval_text(row["low"], row["high"]))
        validation.metric("Validation gain", f"{points_text(row['val_mean'])} pts")
        st.caption(best_note(rule))


def others(long: pd.DataFrame, hidden: list[str]) -> dict | None:
    """How the axes some chart does not show enter it: averaged (None), or each fixed at a chosen value."""
    if not hidden:
        return None
    mode = st.radio("Axes not shown", [AVERAGED, FIXED], horizontal=True, key="sweep_others",
                    help="Averaged: per seed over their values, then the interval over seeds")
    if mode == AVERAGED:
        return None
    return {axis: column.selectbox(axis, ordered(long[axis]), format_func=value_text, key=f"sweep_fix_{axis}")
            for column, axis in zip(st.columns(len(hidden)), hidden, strict=True)}


def subtitle(varied: list[str], shown: list[str], fixed: dict | None) -> str:
    """What became of the axes a chart does not show, e.g. ``distill.alpha averaged``."""
    rest = [axis for axis in varied if axis not in shown]
    if fixed is None:
        return f"{', '.join(rest)} averaged" if rest else ""
    return ", ".join(f"{axis} = {value_text(fixed[axis])}" for axis in rest)


def axis_choices(varied: list[str]) -> tuple[str | None, str | None, str, str | None]:
    """The heatmap's two axes (None with one axis), chosen above it when there are more than two, and the
    line's axis and its grouping axis, chosen above the line."""
    if len(varied) == 1:
        return None, None, varied[0], None
    heat, line = st.columns(2)
    x, y = varied[0], varied[1]
    if len(varied) > 2:
        across, down = heat.columns(2)
        x = across.selectbox("Heatmap across", varied, key="sweep_x")
        y = down.selectbox("Heatmap down", [a for a in varied if a != x], key="sweep_y")
    along_box, by_box = line.columns(2)
    along = along_box.selectbox("Line along", varied, key="sweep_line")
    by = by_box.selectbox("One line per", [NONE, *[a for a in varied if a != along]], index=1, key="sweep_by")
    return x, y, along, None if by == NONE else by


def charts(summary: dict) -> None:
    """The heatmap over two axes (when there are two) beside the line along one, with their controls."""
    varied, long = sweeps.axes(summary), sweeps.seeds(summary)
    if long.empty or not varied:
        st.info("No chart yet: it needs a point with a finished study." if long.empty
                else "No chart: the sweep's axes are unknown.")
        return
    x, y, along, by = axis_choices(varied)
    hidden = [a for a in varied if (x is not None and a not in (x, y)) or a not in (along, by)]
    fixed = others(long, hidden)
    heat, line = st.columns(2) if x is not None else (None, st.container())
    if heat is not None:
        shown = [x, y]
        heat.plotly_chart(gain_map(cells(long, shown, _rest(fixed, shown)), x, y, subtitle(varied, shown, fixed)),
                          key="sweep_heatmap")
        heat.caption(f"{NEAR_ZERO} marks a cell whose 95% interval contains 0: it cannot be told from its baseline.")
    shown = [a for a in (along, by) if a]
    line.plotly_chart(gain_line(cells(long, shown, _rest(fixed, shown)), along, by, subtitle(varied, shown, fixed)),
                      key="sweep_line_chart")
    line.caption("The band is the 95% interval of the gain; an open marker, one that contains 0.")


def _rest(fixed: dict | None, shown: list[str]) -> dict:
    """The fixed values of the axes a chart does not show."""
    return {axis: value for axis, value in (fixed or {}).items() if axis not in shown}


def table(frame: pd.DataFrame, varied: list[str]) -> None:
    """Every point, the highest gain first, with its verdicts and a link to its studies."""
    rows = pd.DataFrame({
        "point": frame["point"], **{axis: frame[axis].map(value_text) for axis in varied},
        "gain": 100 * frame["mean"], "interval": [interval_text(lo, hi) for lo, hi in zip(frame["low"], frame["high"],
                                                                                            strict=True)],
        "verdict": frame["verdict"], "after Holm": frame["holm_verdict"].map(after_holm),
        "studies": frame["study_ids"].map(sweeps.link), "best": frame["best"].map({True: "★", False: ""}),
        "seeds": frame["n"], "p": frame["p_value"], "p Holm": frame["p_holm"],
        "validation gain": 100 * frame["val_mean"]})
    st.dataframe(rows, column_config=TABLE_COLUMNS, hide_index=True, width="stretch", key="sweep_table")
    st.caption("Gain: student − baseline test accuracy in accuracy points, paired by seed, with its 95% interval "
               "(a paired t-interval below 10 seeds, a bootstrap from 10).")


def after_holm(verdict: object) -> str:
    """The verdict after Holm's correction, short: the column says which correction."""
    if not isinstance(verdict, str):
        return "no p-value"
    return verdict if verdict in ("helps", "hurts") else "cannot tell"


def render() -> None:
    st.title("Sweep")
    uri = data.store_uri()
    listed = sweeps.listing(uri)
    st.caption(f"Store: `{uri}`")
    if listed.empty:
        empty_state()
        return
    sweep = choose(uri, listed)
    loaded = sweeps.load(uri, sweep)
    progress(sweep, loaded)
    frame = sweeps.points(loaded.summary)
    if frame.empty:
        st.info("No study of this sweep has ended yet.")
        return
    holm_statement(loaded.summary)
    best(frame, loaded.live, str(loaded.summary.get("best_rule") or BEST_RULE))
    charts(loaded.summary)
    st.subheader("Points, by gain")
    table(frame, sweeps.axes(loaded.summary))


render()
