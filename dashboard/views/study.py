"""Study detail: one study's roles, curves, per-class accuracy, confusion matrix, findings with
their evidence and one-click fixes, the ten quality gates, and the config."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import yaml

from dashboard import charts, data, nav, notes, numbers, text
from dashboard.alerts import finding_card, gate_colours, gates_table
from dashboard.text import md
from kdcore.config import ConfigError
from kdcore.registry import DATASETS
from kdcore.tracker import role_key

ROLE_COLUMNS = {
    "tags.kd.role": "role", "status": "status", "tags.kd.method": "method",
    "metrics.val/best_acc": "val acc", "metrics.test/acc": "test acc", "metrics.shift/acc": "shift acc",
    "metrics.test/entropy": "entropy", "metrics.test/ece": "ECE", "metrics.test/agreement": "agreement",
    "metrics.model/params": "params", "metrics.model/latency_ms": "ms/sample", "metrics.model/memory_mb": "MiB",
}
PERCENT_COLUMNS = ["val acc", "test acc", "shift acc", "ECE", "agreement"]
ROLE_FORMATS = {
    **{column: numbers.percent_column(column) for column in PERCENT_COLUMNS},
    "entropy": st.column_config.NumberColumn("entropy", format="%.2f", help="mean predictive entropy (nats)"),
    "params": numbers.count_column("params"),
    "ms/sample": st.column_config.NumberColumn("ms/sample", format="%.2f"),
    "MiB": st.column_config.NumberColumn("MiB", format="%.1f"),
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
    gates, findings = data.gates(uri, study.name), data.findings(uri, study.name)
    for loaded in (findings, gates):
        notes.problem(study["label"], loaded.problem, "What can be read of it is shown; Diagnose now rewrites it.")
    damaged = bool(gates.problem or findings.problem)
    if gates.value is None and not damaged:
        if study["status"] != "FINISHED":
            st.info("Findings and quality gates are computed when a study finishes.")
            return
        st.info("Not diagnosed yet: this study was made before findings and gates were recorded.")
    if (gates.value is None or damaged) and study["status"] == "FINISHED":
        diagnose_button(uri, study)
    if gates.value is None:
        return
    if not findings.value and not findings.problem:
        st.success("No failure mode detected.", icon=":material/check_circle:")
    for finding in findings.value:
        finding_card(uri, study, runs, finding)

    gates = gates.value
    statuses = [g["status"] for g in gates]
    st.markdown(f"##### Quality gates: {statuses.count('passed')} of {len(gates)} passed, "
                f"{statuses.count('failed')} failed, {statuses.count('not measurable')} not measurable")
    st.dataframe(gate_colours(gates_table(gates)), hide_index=True, width="stretch", column_config={
        "gate": st.column_config.NumberColumn("#", width="small"),
        "status": st.column_config.TextColumn("status", width="small"),
        "name": st.column_config.TextColumn("gate", width="medium"),
        "numbers": st.column_config.TextColumn("numbers", width="medium"),
        "reason": st.column_config.TextColumn("reason", width="large")})


def diagnose_button(uri: str, study: pd.Series) -> None:
    """Compute the study's findings and gates again from what it logged (and store them), on a click."""
    if st.button("Diagnose now", key="diagnose", icon=":material/troubleshoot:"):
        from kdcore.study_results import diagnose
        from kdcore.tracking import MlflowTracker

        try:
            diagnose(MlflowTracker.for_run(study.name, uri), study.name)
        except Exception as err:  # e.g. a role's metrics or predictions are missing from the store
            st.error(f"Could not diagnose this study: {type(err).__name__}: {md(err, 400)}")
            return
        data.clear()
        st.rerun()


EXIT_METRICS = ("exit/test_acc", "exit/val_acc", "exit/latency_ms", "exit/params")


def mechanism_section(uri: str, runs: pd.DataFrame) -> None:
    """What the study's mechanism adds: the chain's stages, the peers' curves together, the born-again
    generations, or the exits of a self-distilled student."""
    mechanisms = runs.get("tags.kd.mechanism", pd.Series(dtype=object)).dropna()
    mechanism = mechanisms.iloc[0] if len(mechanisms) else "offline"
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


VIEW_SAMPLES = 6


def inputs_section(uri: str, study_id: str, runs: pd.DataFrame) -> None:
    """What the models see: paired views side by side (multi-view data), and the transformers' attention."""
    config = data.config_yaml(uri, study_id).value  # None: the Config section says why
    dataset = (yaml.safe_load(config).get("data") or {}).get("name", "") if config else ""
    meta = DATASETS.entry(dataset).meta if isinstance(dataset, str) and dataset in DATASETS else {}
    roles = runs.set_index("tags.kd.role")["run_id"].to_dict()
    if config and meta.get("views") and not meta.get("downloads"):
        views_section(uri, config, meta, roles, runs)
    maps = {role: found for role, run_id in roles.items() if (found := data.attentions(uri, run_id))}
    if maps:
        attention_section(maps, meta.get("vocab"))


def views_section(uri: str, config: str, meta: dict, roles: dict[str, str], runs: pd.DataFrame) -> None:
    try:
        x, y = data.test_samples(config, VIEW_SAMPLES)
    except ConfigError as err:  # a config.yaml this version of kdcore no longer accepts
        st.warning(f"The scenes cannot be drawn: {md(err, 400)}", icon=notes.ICON)
        return
    names = meta.get("classes") or [str(k) for k in range(meta["num_classes"])]
    seen = runs.set_index("tags.kd.role").get("tags.kd.view", pd.Series(dtype=str)).dropna().to_dict()
    st.subheader("RGB and depth, side by side")
    if seen:
        st.caption(", ".join(f"the {md(role)} sees {md(view)}" for role, view in seen.items()) + ".")
    shown = [r for r in ("teacher", "student") if r in roles]
    predicted = {role: found["test_probs"][:VIEW_SAMPLES].argmax(1)
                 for role in shown if (found := data.predictions(uri, roles[role]))}
    captions = [f"{names[int(label)]}" + "".join(f"<br>{role}: {names[int(p[i])]}" for role, p in predicted.items())
                for i, label in enumerate(y)]
    (r0, r1), (d0, d1) = meta["views"]["rgb"], meta["views"]["depth"]
    st.plotly_chart(charts.paired_views(x[:, r0:r1], x[:, d0:d1], captions), key="paired-views")


def attention_section(maps: dict[str, dict], vocab: str | None) -> None:
    """One example, one layer and one head (or their mean), for every role that attends, side by side."""
    st.subheader("Attention maps")
    inputs = next(iter(maps.values()))["inputs"]
    decode = (lambda ids: [vocab[int(i)] for i in ids]) if vocab else (lambda ids: [str(int(i)) for i in ids])
    prompts = ["".join(decode(row)).split(".")[0] for row in inputs]
    depth = max(found["maps"].shape[0] for found in maps.values())
    heads = max(found["maps"].shape[2] for found in maps.values())
    a, b, c = st.columns(3)
    example = a.selectbox("Example", range(len(prompts)), format_func=lambda i: prompts[i], key="attn-example")
    layer = (b.slider("Layer (a shallower model shows its deepest)", 1, depth, depth, key="attn-layer")
             if depth > 1 else 1)
    head = c.selectbox("Head", ["mean of heads", *range(1, heads + 1)], key="attn-head")
    chosen = {}
    for role, found in maps.items():
        stack = found["maps"].astype(float)  # (layers, N, heads, T, T)
        per_head = stack[min(layer, stack.shape[0]) - 1, example]
        chosen[role] = per_head.mean(0) if head == "mean of heads" else per_head[min(int(head), len(per_head)) - 1]
    st.plotly_chart(charts.attention_maps(chosen, decode(inputs[example]),
                                          f"Where each position looks: {prompts[example]}"), key="attention")
    st.caption("Rows are query positions, columns the positions they attend to; a causal model only looks back. "
               "Attention-pattern distillation pulls the student's maps towards the teacher's.")


def export_section(uri: str, study: pd.Series, runs: pd.DataFrame) -> None:
    """Export a role's weights (and register them) through kdcore.export, as ``kdx export`` does."""
    from kdcore.export import default_out, export_study
    from kdcore.export_error import ExportError
    from kdcore.export_formats import FORMATS

    st.subheader("Export")
    roles = runs["tags.kd.role"].tolist()
    a, b, c = st.columns(3)
    fmt = a.selectbox("Format", FORMATS, key="export-format")
    role = b.selectbox("Role", roles, index=roles.index("student") if "student" in roles else 0, key="export-role")
    name = c.text_input("Register as (optional)", key="export-name",
                        help="A model name in the store's Model Registry; each export adds a version.")
    force = st.checkbox("Replace the folder when it is not empty", key="export-force")
    st.caption(f"Writes {md(default_out(study.name, role).absolute())}: weights, config.yaml, model.json, "
               "MODEL_CARD.md.")
    if st.button("Export", key="export", icon=":material/download:"):
        try:
            with st.spinner("Exporting..."):
                result = export_study(study.name, role=role, fmt=fmt, force=force, register=name.strip() or None,
                                      uri=uri)
        except ExportError as err:
            st.error(md(err, 400))
            return
        st.success("  \n".join(md(line.strip()) for line in result.lines()), icon=":material/check_circle:")


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
    a.metric("Status", md(study["status"]))
    b.metric("Student / teacher", numbers.ratio(study["ratio_teacher"]))
    c.metric("Student / baseline", numbers.ratio(study["ratio_baseline"]))
    d.metric(*text.parameters_saved(study["param_ratio"]))
    if isinstance(study.get("failure_reason"), str) and study["failure_reason"]:
        st.error(f"Failed: {md(study['failure_reason'], 1000)}")
    notes.studies(study.to_frame().T)
    if isinstance(study.get("shift"), str) and study["shift"]:
        st.caption(f"Shifted test split (gate 5): {md(study['shift'], 300)}")
    if runs.empty:
        st.caption("No role has started yet.")
        return
    notes.runs(runs)

    present = [c for c in ROLE_COLUMNS if c in runs]
    roles_table = numbers.as_percent(runs[present].rename(columns=ROLE_COLUMNS), PERCENT_COLUMNS)
    st.dataframe(roles_table, hide_index=True, width="stretch", column_config=ROLE_FORMATS)
    mechanism_section(uri, runs)
    inputs_section(uri, study_id, runs)

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
    export_section(uri, study, runs)

    st.subheader("Config")
    config = data.config_yaml(uri, study_id)
    if config.value is None:
        notes.problem(study["label"], config.problem, "Its config cannot be shown or opened in Launch.")
        return
    st.code(config.value, language="yaml")
    if st.button("Open in Launch with this config", type="primary"):
        nav.fill_launch(yaml.safe_load(config.value), f"study {study['label']} ({study.name[:8]})")
        nav.go("launch")


render()
