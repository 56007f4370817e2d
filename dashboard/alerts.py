"""Findings and gates as the pages show them: alerts with evidence charts and one-click fixes.

Shared by Study detail (one study) and Studies (the selected studies), so a finding looks and acts
the same everywhere. Each finding code maps to the builders of :mod:`dashboard.charts` that show
its evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import yaml

from dashboard import charts, data, nav
from dashboard import numbers as numbers_format
from dashboard.text import md
from kdcore.config import ConfigError, apply_overrides, validate
from kdcore.diagnostics import ASSISTANT_KEEP

# Gate statuses as words: emoji render as empty boxes in a browser without an emoji font.
GATE_STATUS = {"passed": "passed", "failed": "FAILED", "not measurable": "not measurable"}
GATE_COLOURS = {"passed": "#1a7f37", "FAILED": "#cf222e", "not measurable": "#6e7781"}
PERCENT_NAMES = {"chance", "agreement", "student_gap", "baseline_gap", "kd_loss_share", "kept_advantage"}  # as %


def number(name: str, value: float) -> str:
    """One evidence or gate number in the dashboard's formats (:mod:`dashboard.numbers`): accuracies and
    calibration errors as percents, ratios with two decimals, points with their sign, counts whole."""
    if value is None or pd.isna(value):
        return "-"
    if name.endswith(("_acc", "_ece")) or name in PERCENT_NAMES:
        return numbers_format.percent(value)
    if "ratio" in name or "_over_" in name:
        return numbers_format.ratio(value)
    if name.endswith("_points"):
        return f"{value:+.1f} pts"
    if name.endswith("_entropy"):
        return f"{value:.2f} nats"
    return numbers_format.count(value) if float(value).is_integer() else f"{value:.3g}"


def numbers(values: dict[str, float]) -> str:
    """Evidence or gate numbers as one line of plain text (names come from the store)."""
    return ", ".join(f"{name.replace('_', ' ')} {number(name, v)}" for name, v in values.items())


# Each finding's evidence chart(s), from the study's role runs (and its row, predictions, curves).
Evidence = Callable[[str, pd.Series, pd.DataFrame, dict[str, Any]], list[go.Figure]]


ACCURACY = "metrics.val/best_acc"  # findings judge validation numbers; their evidence shows the same


def _capacity(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> list[go.Figure]:
    return [charts.role_bars(runs, ACCURACY, "Validation accuracy by role", percent=True)]


def _overconfidence(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> list[go.Figure]:
    return [charts.role_bars(runs, "metrics.val/entropy", "Mean predictive entropy (validation)"),
            charts.role_bars(runs, "metrics.val/ece", "Calibration error (ECE, validation)")]


def _confusion(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> list[go.Figure]:
    history = data.histories(uri, tuple(runs["run_id"]), ("train/loss_kd", "val/acc"))
    return [charts.kd_loss_vs_accuracy(history, runs)]


def _cross_modal(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> list[go.Figure]:
    chance = finding["evidence"].get("chance")
    lines = {chance: "chance (1/K)"} if chance is not None else None
    return [charts.role_bars(runs, ACCURACY, "Validation accuracy against chance", lines, percent=True)]


def _chain(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> list[go.Figure]:
    return [charts.chain_accuracy(runs, keep=ASSISTANT_KEEP)]


EVIDENCE: dict[str, Evidence] = {"capacity_mismatch": _capacity, "overconfidence": _overconfidence,
                                 "knowledge_confusion": _confusion, "cross_modal_failure": _cross_modal,
                                 "progressive_degradation": _chain}


def _config_with(uri: str, study: pd.Series, overrides: list[str], suffix: str) -> dict[str, Any]:
    """The study's config with ``overrides`` applied, named after the study and ``suffix`` (ConfigError if they
    do not apply, or the study has no usable config)."""
    config = data.config_yaml(uri, study.name)
    if config.value is None:
        raise ConfigError(f"{config.problem}, so there is nothing to apply the fix to")
    raw = apply_overrides(yaml.safe_load(config.value), overrides)
    raw.setdefault("tracking", {})["study_name"] = f"{study['label']}"[:250 - len(suffix)] + suffix  # MLflow's limit
    return raw


def fixed_config(uri: str, study: pd.Series, finding: dict[str, Any]) -> dict[str, Any]:
    """The study's config with the finding's fix applied, named after both."""
    return _config_with(uri, study, finding["fix_overrides"], f" + fix: {finding['code']}")


def sweep_configs(uri: str, study: pd.Series, finding: dict[str, Any]) -> list[dict[str, Any]]:
    """One config per value of the finding's sweep: the study's own config with only that value changed, so
    the studies it makes are the study's siblings (:mod:`kdcore.siblings`)."""
    return [_config_with(uri, study, [f"{key}={value}"], f" + sweep: {key.rsplit('.', 1)[-1]}={value}")
            for key, values in finding["sweep"].items() for value in values]


def _launch(uri: str, raws: list[dict[str, Any]]) -> None:
    """Validate every config first (none is queued when one does not apply), then queue them all."""
    from kdcore import launcher  # imports torch: only when a study is launched

    try:
        configs = [validate(raw) for raw in raws]
    except ConfigError as err:
        st.error(f"The fix does not apply to this config: {md(err, 400)}")
        return
    for cfg in configs:
        job = launcher.launch(cfg, tracking_uri=uri)
        st.toast(f"Queued {job.job_id}: {md(cfg.tracking.study_name)}")
    data.clear()


def relaunch(uri: str, study: pd.Series, finding: dict[str, Any]) -> None:
    try:
        raws = [fixed_config(uri, study, finding)]
    except ConfigError as err:
        st.error(f"The fix does not apply to this config: {md(err, 400)}")
        return
    _launch(uri, raws)


def run_sweep(uri: str, study: pd.Series, finding: dict[str, Any]) -> None:
    try:
        raws = sweep_configs(uri, study, finding)
    except ConfigError as err:
        st.error(f"The sweep does not apply to this config: {md(err, 400)}")
        return
    _launch(uri, raws)


def finding_card(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> None:
    """One finding (as :func:`dashboard.data.findings` gives it): the alert (title, evidence, fix), its
    evidence chart(s), the one-click fix and, where the diagnosis needs more studies, the sweep that makes
    them. Its text comes from the store and is shown as plain text."""
    code = finding["code"]
    alert = st.error if finding["severity"] == "critical" else st.warning
    with st.container(border=True):
        name = f"`{code}`" if code in EVIDENCE else md(code)  # one of the five codes, or any text from the store
        alert(f"**{md(finding['title'])}** ({name}, {md(finding['severity'])})  \n"
              f"Evidence: {md(numbers(finding['evidence']), 1000)}  \n**Fix:** {md(finding['fix'], 1000)}",
              icon=":material/error:" if alert is st.error else ":material/warning:")
        build = EVIDENCE.get(code)
        figures = build(uri, study, runs, finding) if build else []
        if figures:
            for i, (column, figure) in enumerate(zip(st.columns(len(figures)), figures, strict=True)):
                column.plotly_chart(figure, key=f"evidence-{study.name}-{code}-{i}")
        if finding["fix_overrides"]:
            fix_buttons(uri, study, finding)
        if finding["sweep"]:
            sweep_button(uri, study, finding)


def fix_buttons(uri: str, study: pd.Series, finding: dict[str, Any]) -> None:
    """The fix as overrides, relaunched in one click or opened in Launch."""
    code = finding["code"]
    st.caption("The fix as config overrides: " + md(" ".join(finding["fix_overrides"]), 1000))
    row = st.container(horizontal=True)  # buttons as wide as their labels, wrapping on a narrow page
    if row.button("Relaunch with this fix", key=f"relaunch-{study.name}-{code}", type="primary",
                   icon=":material/build:"):
        relaunch(uri, study, finding)
    if row.button("Edit the fix in Launch", key=f"edit-fix-{study.name}-{code}"):
        try:
            fixed = fixed_config(uri, study, finding)
        except ConfigError as err:
            st.error(f"The fix does not apply to this config: {md(err, 400)}")
            return
        nav.fill_launch(fixed, f"the fix for {finding.get('title', code)} of study {study.name[:8]}")
        nav.go("launch")


def sweep_button(uri: str, study: pd.Series, finding: dict[str, Any]) -> None:
    """The studies the diagnosis still needs, one per value, launched together."""
    code = finding["code"]
    runs = "; ".join(f"{key} = {', '.join(map(str, values))}" for key, values in finding["sweep"].items())
    st.caption("To confirm it, the same study at: " + md(runs, 1000))
    if st.button("Run the temperature sweep", key=f"sweep-{study.name}-{code}", icon=":material/tune:"):
        run_sweep(uri, study, finding)


def gates_table(gates: list[dict[str, Any]]) -> pd.DataFrame:
    """The gates (as :func:`dashboard.data.gates` gives them) as a table: a dataframe shows text as it is."""
    return pd.DataFrame([{"gate": g["number"], "status": GATE_STATUS.get(g["status"], g["status"]), "name": g["name"],
                          "numbers": numbers(g["numbers"]), "reason": g["reason"]} for g in gates])


def gate_colours(table: pd.DataFrame) -> Any:
    """The gates table with each status in its colour (green, red, grey), for ``st.dataframe``."""
    return table.style.map(lambda status: f"color: {GATE_COLOURS.get(status, 'inherit')}; font-weight: 600",
                           subset=["status"])
