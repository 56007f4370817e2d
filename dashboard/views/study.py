"""Study detail: one study's roles, curves, per-class accuracy, confusion matrix, findings with
their evidence and one-click fixes, the ten quality gates, and the config."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import yaml

from dashboard import charts, data, nav
from dashboard.alerts import finding_card, gates_table
from kdcore.tracker import role_key

ROLE_COLUMNS = {
    "tags.kd.role": "role", "status": "status", "tags.kd.method": "method",
    "metrics.val/best_acc": "val acc", "metrics.test/acc": "test acc", "metrics.shift/acc": "shift acc",
    "metrics.test/entropy": "entropy", "metrics.test/ece": "ECE", "metrics.test/agreement": "agreement",
    "metrics.model/params": "params", "metrics.model/latency_ms": "ms/sample", "metrics.model/memory_mb": "MiB",
}


def choose_study(uri: str) -> str | None:
    studies = data.studies(uri)
    if studies.empty:
        st.info("No studies yet.")
        nav.link("launch", "Launch one")
        return None
    ids = studies["study_id"].tolist()
    if st.query_params.get("id") and st.query_params.get("id") not in ids:  # a link to a study newer than the cache
        data.clear()
        studies = data.studies(uri)
        ids = studies["study_id"].tolist()
    if st.session_state.get("study") not in ids:  # arriving by link: the URL names the study
        st.session_state["study"] = st.query_params.get("id") if st.query_params.get("id") in ids else ids[0]
    # Names repeat (same config, another seed or temperature); the short id tells them apart.
    labels = {sid: f"{label} · {sid[:8]}" for sid, label in zip(studies["study_id"], studies["label"], strict=True)}
    study_id = st.selectbox("Study", ids, key="study", format_func=labels.get)
    st.query_params["id"] = study_id
    return study_id


def diagnosis(uri: str, study: pd.Series, runs: pd.DataFrame) -> None:
    """Findings as alerts with their evidence and fixes, then the ten quality gates as a checklist."""
    st.subheader("Findings and quality gates")
    gates = data.gates(uri, study.name)
    if gates is None:
        if study["status"] != "FINISHED":
            st.info("Findings and quality gates are computed when a study finishes.")
            return
        st.info("Not diagnosed yet: this study was made before findings and gates were recorded.")
        if st.button("Diagnose now", key="diagnose", icon=":material/troubleshoot:"):
            from kdcore.study import diagnose
            from kdcore.tracking import MlflowTracker

            try:
                diagnose(MlflowTracker.for_run(study.name, uri), study.name)
            except Exception as err:  # e.g. a role's metrics or predictions are missing from the store
                st.error(f"Could not diagnose this study: {type(err).__name__}: {err}")
                return
            data.clear()
            st.rerun()
        return
    findings = data.findings(uri, study.name)
    if not findings:
        st.success("No failure mode detected.", icon=":material/check_circle:")
    for finding in findings:
        finding_card(uri, study, runs, finding)

    statuses = [g["status"] for g in gates]
    st.markdown(f"##### Quality gates: {statuses.count('passed')} of {len(gates)} passed, "
                f"{statuses.count('failed')} failed, {statuses.count('not measurable')} not measurable")
    st.dataframe(gates_table(gates), hide_index=True, width="stretch", column_config={
        "gate": st.column_config.NumberColumn("#", width="small"),
        "status": st.column_config.TextColumn("status", width="small"),
        "name": st.column_config.TextColumn("gate", width="medium"),
        "numbers": st.column_config.TextColumn("numbers", width="medium"),
        "reason": st.column_config.TextColumn("reason", width="large")})


EXIT_METRICS = ("exit/test_acc", "exit/val_acc", "exit/latency_ms", "exit/params")


def mechanism_section(uri: str, runs: pd.DataFrame) -> None:
    """What the study's mechanism adds: the chain's stages, the peers' curves together, the born-again
    generations, or the exits of a self-distilled student."""
    mechanism = runs["tags.kd.mechanism"].dropna().iloc[0] if "tags.kd.mechanism" in runs else "offline"
    roles = runs["tags.kd.role"]
    if mechanism == "progressive":
        skip = runs.get("tags.kd.skip_to_teacher", pd.Series(dtype=str)).eq("true").any()
        st.subheader("The chain" + (", every stage also taught by the teacher" if skip else ""))
        st.plotly_chart(charts.chain_accuracy(runs), key="mechanism-chain")
    elif mechanism == "online":
        cohort = runs[roles.eq("student") | roles.str.startswith("peer_") | roles.eq("baseline")]
        accs = cohort.loc[~cohort["tags.kd.role"].eq("baseline"), "metrics.test/acc"].astype(float)
        st.subheader(f"Peers: best {accs.max():.1%}, mean {accs.mean():.1%} test accuracy")
        metric = st.selectbox("Peers' curve", data.CURVE_METRICS, index=1, key="peer-curve")
        history = data.histories(uri, tuple(cohort["run_id"]), tuple(data.CURVE_METRICS))
        st.plotly_chart(charts.curves(history, cohort, metric, aggregate_seeds=False), key="mechanism-peers")
    elif mechanism == "self" and roles.str.startswith("generation_").any():
        st.subheader("Born-again generations")
        st.plotly_chart(charts.generations(runs), key="mechanism-generations")
    elif mechanism == "self":
        student = runs[roles.eq("student")]
        if student.empty:
            return
        history = data.histories(uri, tuple(student["run_id"]), EXIT_METRICS)
        chosen = student.get("tags.kd.exit", pd.Series(["deepest"])).iloc[0]
        st.subheader("Exits of the self-distilled student")
        st.plotly_chart(charts.exits(history, int(chosen) if str(chosen).isdigit() else None),
                        key="mechanism-exits")


def render() -> None:
    st.title("Study detail")
    uri = data.store_uri()
    study_id = choose_study(uri)
    if study_id is None:
        return
    study = data.studies(uri).set_index("study_id").loc[study_id]
    runs = data.runs(uri, (study_id,))
    if not runs.empty:  # chain order: teacher, assistants, baseline, student
        runs = runs.sort_values("tags.kd.role", key=lambda roles: roles.map(role_key), kind="stable")
    a, b, c, d = st.columns(4)
    a.metric("Status", study["status"])
    b.metric("Student / teacher", "-" if study.isna()["ratio_teacher"] else f"{study['ratio_teacher']:.3f}")
    c.metric("Student / baseline", "-" if study.isna()["ratio_baseline"] else f"{study['ratio_baseline']:.3f}")
    d.metric("Parameters saved", "-" if study.isna()["param_ratio"] else f"{study['param_ratio']:.1f}x")
    if isinstance(study.get("failure_reason"), str) and study["failure_reason"]:
        st.error(f"Failed: {study['failure_reason']}")
    if runs.empty:
        st.caption("No role has started yet.")
        return

    present = [c for c in ROLE_COLUMNS if c in runs]
    st.dataframe(runs[present].rename(columns=ROLE_COLUMNS), hide_index=True, width="stretch")
    mechanism_section(uri, runs)

    metric = st.selectbox("Curve", data.CURVE_METRICS, index=1)
    history = data.histories(uri, tuple(runs["run_id"]), tuple(data.CURVE_METRICS))
    st.plotly_chart(charts.curves(history, runs, metric, aggregate_seeds=False), key="detail-curves")

    left, right = st.columns(2)
    left.plotly_chart(charts.per_class_accuracy(runs), key="per-class")
    roles = runs.set_index("tags.kd.role")["run_id"].to_dict()
    role = right.selectbox("Confusion matrix of", list(roles), index=len(roles) - 1)
    found = data.predictions(uri, roles[role])
    if found:
        right.plotly_chart(charts.confusion_matrix(found["test_probs"], found["test_labels"], title=role),
                           key="confusion")

    diagnosis(uri, study, runs)

    st.subheader("Config")
    text = data.config_yaml(uri, study_id)
    st.code(text, language="yaml")
    if st.button("Open in Launch with this config", type="primary"):
        st.session_state["launch_config"] = yaml.safe_load(text)
        st.session_state["form_version"] = st.session_state.get("form_version", 0) + 1
        nav.go("launch")


render()
