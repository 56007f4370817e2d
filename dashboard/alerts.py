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
from dashboard.text import md
from kdcore.config import ConfigError, apply_overrides, validate
from kdcore.diagnostics import ASSISTANT_KEEP

GATE_ICONS = {"passed": "✅ passed", "failed": "❌ failed", "not measurable": "➖ not measurable"}
PERCENT_NAMES = {"chance", "agreement", "train_test_gap"}  # accuracies (and their differences) shown as %


def number(name: str, value: float) -> str:
    """One evidence or gate number as people read it: accuracies as %, ratios as x.xxx, counts whole."""
    if value is None or pd.isna(value):
        return "-"
    if name.endswith("_acc") or name in PERCENT_NAMES:
        return f"{value:.1%}"
    if "ratio" in name or "_over_" in name:
        return f"{value:.3f}"
    if name.endswith(("_points", "_ece")):
        return f"{value:.2f}" if name.endswith("_points") else f"{value:.3f}"
    if name.endswith("_entropy"):
        return f"{value:.3f} nats"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def numbers(values: dict[str, float]) -> str:
    """Evidence or gate numbers as one line of plain text (names come from the store)."""
    return ", ".join(f"{name.replace('_', ' ')} {number(name, v)}" for name, v in values.items())


# Each finding's evidence chart(s), from the study's role runs (and its row, predictions, curves).
Evidence = Callable[[str, pd.Series, pd.DataFrame, dict[str, Any]], list[go.Figure]]


def _capacity(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> list[go.Figure]:
    return [charts.role_bars(runs, "metrics.test/acc", "Test accuracy by role", percent=True),
            charts.ratio_bars(study.to_frame().T.assign(study_id=study.name))]


def _overconfidence(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> list[go.Figure]:
    roles = runs.set_index("tags.kd.role")["run_id"]
    probs = {role: data.predictions(uri, roles[role]).get("test_probs") for role in ("teacher", "student")
             if role in roles}
    return [charts.entropy_histograms(probs),
            charts.role_bars(runs, "metrics.val/ece", "Calibration error (ECE, validation)")]


def _confusion(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> list[go.Figure]:
    history = data.histories(uri, tuple(runs["run_id"]), ("train/loss_kd", "val/acc"))
    return [charts.kd_loss_vs_accuracy(history, runs)]


def _cross_modal(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> list[go.Figure]:
    chance = finding["evidence"].get("chance")
    lines = {chance: "chance (1/K)"} if chance is not None else None
    return [charts.role_bars(runs, "metrics.test/acc", "Test accuracy against chance", lines, percent=True)]


def _chain(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> list[go.Figure]:
    return [charts.chain_accuracy(runs, keep=ASSISTANT_KEEP)]


EVIDENCE: dict[str, Evidence] = {"capacity_mismatch": _capacity, "overconfidence": _overconfidence,
                                 "knowledge_confusion": _confusion, "cross_modal_failure": _cross_modal,
                                 "progressive_degradation": _chain}


def fixed_config(uri: str, study: pd.Series, finding: dict[str, Any]) -> dict[str, Any]:
    """The study's config with the finding's fix applied, named after both (ConfigError if it does not apply,
    or the study has no usable config)."""
    config = data.config_yaml(uri, study.name)
    if config.value is None:
        raise ConfigError(f"{config.problem}, so there is nothing to apply the fix to")
    raw = apply_overrides(yaml.safe_load(config.value), finding["fix_overrides"])
    suffix = f" + fix: {finding['code']}"  # the name stays within MLflow's 250 characters
    raw.setdefault("tracking", {})["study_name"] = f"{study['label']}"[:250 - len(suffix)] + suffix
    return raw


def relaunch(uri: str, study: pd.Series, finding: dict[str, Any]) -> None:
    from kdcore import launcher  # imports torch: only when a study is launched

    try:
        cfg = validate(fixed_config(uri, study, finding))
    except ConfigError as err:
        st.error(f"The fix does not apply to this config: {md(err, 400)}")
        return
    job = launcher.launch(cfg, tracking_uri=uri)
    data.clear()
    st.toast(f"Queued {job.job_id}: {md(cfg.tracking.study_name)}")


def finding_card(uri: str, study: pd.Series, runs: pd.DataFrame, finding: dict[str, Any]) -> None:
    """One finding (as :func:`dashboard.data.findings` gives it): the alert (title, evidence, fix), its
    evidence chart(s) and the one-click fix. Its text comes from the store and is shown as plain text."""
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
        overrides = finding["fix_overrides"]
        if not overrides:
            return
        st.caption("The fix as config overrides: " + md(" ".join(overrides), 1000))
        left, right, _ = st.columns([1, 1, 3])
        if left.button("Relaunch with this fix", key=f"relaunch-{study.name}-{code}", type="primary",
                       icon=":material/build:"):
            relaunch(uri, study, finding)
        if right.button("Edit the fix in Launch", key=f"edit-fix-{study.name}-{code}"):
            try:
                st.session_state["launch_config"] = fixed_config(uri, study, finding)
            except ConfigError as err:
                st.error(f"The fix does not apply to this config: {md(err, 400)}")
                return
            st.session_state["form_version"] = st.session_state.get("form_version", 0) + 1
            nav.go("launch")


def gates_table(gates: list[dict[str, Any]]) -> pd.DataFrame:
    """The gates (as :func:`dashboard.data.gates` gives them) as a table: a dataframe shows text as it is."""
    return pd.DataFrame([{"gate": g["number"], "status": GATE_ICONS.get(g["status"], g["status"]), "name": g["name"],
                          "numbers": numbers(g["numbers"]), "reason": g["reason"]} for g in gates])
