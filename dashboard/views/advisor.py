"""Advisor: describe teacher, student and task; see the path through the decision tree and the advice."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from dashboard import data, nav, sources
from dashboard.tree_chart import decision_tree
from kdcore import advisor
from kdcore.config import DataConfig, first_error, load_config
from kdcore.models.base import ModelSourceError
from kdcore.registry import DATASETS, MODELS, data_meta, fitting_models

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_kd.yaml"
NEEDS = {"decisions": "final decisions", "patterns": "pattern recognition", "structure": "structural reasoning"}


def initial(key: str, **default: Any) -> dict[str, Any]:
    """A widget's default, unless its key already holds a value (a preset opened from Learn): Streamlit warns
    when a widget gets both, so the value is set one way."""
    return {} if key in st.session_state else default


def data_key(dataset: Any) -> str:
    """A dataset name, or your data's config as JSON: what the cached counts are keyed on."""
    return dataset if isinstance(dataset, str) else dataset.model_dump_json()


def data_name(dataset: Any) -> str:
    return dataset if isinstance(dataset, str) else f"{dataset.name}:{Path(dataset.path or '').name}"


@st.cache_data(show_spinner=False)
def parameters(model: str, width: int | None, depth: int | None, data: str, source: str = "{}") -> int:
    dataset = DataConfig.model_validate_json(data) if data.startswith("{") else data
    return advisor.parameters(model, width, depth, dataset, **json.loads(source))


def own_side(role: str, dataset: Any) -> dict[str, Any] | None:
    """"Use my own model": the side as a model source, sized from its definition; None when off."""
    model, refused = sources.model_panel(role, {}, f"adv.own.{role}")
    if model is None:
        return None
    for field, message in refused.items():
        st.error(f"{field}: {message}", icon=":material/error:")
    spec = {"model": model.pop("name"), **{k: v for k, v in model.items() if v not in (None, {}, True)}}
    if refused or not spec.get("path"):
        return spec
    try:
        count = parameters(spec["model"], None, None, data_key(dataset), json.dumps(
            {k: spec[k] for k in ("path", "kwargs", "features") if k in spec}))
        st.caption(f"{count:,} parameters, counted from its definition (no weights loaded)")
    except ModelSourceError as err:  # read from its definition: a folder without config, a module that fails
        st.error(f"{role}.{err.field}: {err}", icon=":material/error:")
    except ValidationError as err:
        st.error(f"{role}.{first_error(err)}", icon=":material/error:")
    return spec


def side_form(role: str, dataset: Any, default_model: str, default_size: str) -> dict[str, Any]:
    """Model and size of one side, with its parameter count from the registry (or a model of yours)."""
    own = own_side(role, dataset)
    if own is not None:
        return own
    models = fitting_models(dataset)
    model = st.selectbox("Model", models, key=f"adv.{role}.model",
                         **initial(f"adv.{role}.model", index=models.index(default_model)
                                   if default_model in models else 0))
    sizes = MODELS.entry(model).meta["sizes"]
    options = [*sizes, "custom"]
    size = st.selectbox("Size", options, key=f"adv.{role}.size", format_func=lambda s: s if s == "custom" else
                        f"{s} (width {sizes[s][0]}, depth {sizes[s][1]})",
                        **initial(f"adv.{role}.size", index=options.index(default_size)
                                  if default_size in options else 0))
    spec: dict[str, Any] = {"model": model}
    if size == "custom":
        left, right = st.columns(2)
        spec["width"] = int(left.number_input("Width", 1, 4096, 64, key=f"adv.{role}.width"))
        spec["depth"] = int(right.number_input("Depth", 1, 16, 2, key=f"adv.{role}.depth"))
        width, depth = spec["width"], spec["depth"]
    else:
        spec["size"] = size
        width, depth = sizes[size]
    st.caption(f"{parameters(model, width, depth, data_key(dataset)):,} parameters on {data_name(dataset)}")
    return spec


def accuracies(uri: str) -> tuple[float | None, float | None]:
    """Teacher and student-alone accuracy: from a study in the store, typed in, or unknown."""
    source = st.radio("Accuracies", ["unknown", "from a study", "typed in"], horizontal=True, key="adv.acc",
                      help="The performance ratio (teacher over the student trained alone) sizes the gap best.")
    if source == "from a study":
        studies = data.studies(uri).dropna(subset=["teacher_acc", "baseline_acc"])
        if studies.empty:
            st.caption("No finished study with a teacher and a baseline in this store.")
            return None, None
        labels = dict(zip(studies["study_id"], studies["label"], strict=True))
        chosen = st.selectbox("Study", list(labels), format_func=lambda i: f"{labels[i]} · {i[:8]}", key="adv.study")
        row = studies.set_index("study_id").loc[chosen]
        st.caption(f"teacher {row['teacher_acc']:.1%}, baseline (student alone) {row['baseline_acc']:.1%}")
        return float(row["teacher_acc"]), float(row["baseline_acc"])
    if source == "typed in":
        left, right = st.columns(2)
        teacher = left.number_input("Teacher accuracy", 0.0, 1.0, 0.95, 0.01, key="adv.t_acc")
        student = right.number_input("Student accuracy, trained alone", 0.0, 1.0, 0.80, 0.01, key="adv.s_acc")
        return teacher, student
    return None, None


def situation_form(uri: str) -> dict[str, Any]:
    datasets = [e.name for e in DATASETS if not e.meta.get("source")]
    dataset: Any = st.selectbox("Dataset", datasets, key="adv.dataset",
                                **initial("adv.dataset", index=datasets.index("digits") if "digits" in datasets else 0))
    own_data, refused = sources.data_panel({}, "adv.own")
    for field, message in refused.items():
        st.error(f"{field}: {message}", icon=":material/error:")
    if own_data is not None and not refused:
        try:
            dataset = DataConfig.model_validate(own_data)
            data_meta(dataset)
        except (ValidationError, ValueError) as err:
            st.error(first_error(err) if isinstance(err, ValidationError) else str(err), icon=":material/error:")
            dataset = dataset if isinstance(dataset, str) else datasets[0]
    teacher_col, student_col, task_col = st.columns(3)
    with teacher_col.container(border=True):
        st.markdown("**Teacher**")
        teacher = side_form("teacher", dataset, "cnn2d" if dataset == "digits" else "cnn1d", "large")
    with student_col.container(border=True):
        st.markdown("**Student**")
        student = side_form("student", dataset, "mlp", "tiny")
    with task_col.container(border=True):
        st.markdown("**Task and situation**")
        needs = st.multiselect("The task needs", list(NEEDS), format_func=NEEDS.get, key="adv.needs",
                               **initial("adv.needs", default=["decisions"]))
        raw: dict[str, Any] = {
            "proven_teacher": st.toggle("A proven teacher exists", key="adv.proven",
                                        **initial("adv.proven", value=True)),
            "stable_domain": st.toggle("The domain is stable", key="adv.stable", **initial("adv.stable", value=True)),
            "several_learners": st.toggle("Several learners train together", key="adv.peers",
                                          help="Online learning needs them AND exploration: no proven teacher, "
                                               "or a drifting domain."),
        }
    with st.expander("Accuracies, modalities, tasks and boundaries"):
        teacher["accuracy"], student["accuracy"] = accuracies(uri)
        left, right = st.columns(2)
        for column, role, spec in ((left, "teacher", teacher), (right, "student", student)):
            meta = data_meta(dataset)
            hint = " or ".join(meta["views"]) if meta.get("views") else meta.get("modality", "")
            spec["modality"] = column.text_input(f"{role.title()} modality", key=f"adv.{role}.modality",
                                                 placeholder=hint) or None
            spec["task"] = column.text_input(f"{role.title()} task", "classification", key=f"adv.{role}.task")
        st.caption("NOT-FOR boundaries (a different task above is one too): distillation is the wrong tool when "
                   "one applies.")
        raw |= {flag: st.checkbox(advisor.Situation.model_fields[flag].description, key=f"adv.{flag}")
                for flag in advisor.BOUNDARY_FLAGS}
    where = {"dataset": dataset} if isinstance(dataset, str) else {"data": own_data}
    return raw | where | {"teacher": teacher, "student": student, "needs": needs or ["decisions"]}


def show(advice: advisor.Advice) -> None:
    for boundary in advice.not_for:
        st.error(f"**Do not distill** (`{boundary.name}`). {boundary.boundary} **Instead:** {boundary.instead}",
                 icon=":material/block:")
    if advice.not_for:
        st.caption("What follows is the tree's answer if you distill anyway.")
    low, high, suggested = advice.temperature
    a, b, c, d = st.columns(4)
    a.metric("Mechanism", advice.mechanism)
    b.metric("Knowledge", " + ".join(advice.knowledge), help=f"method {advice.method}")
    c.metric("Assistants", len(advice.assistants))
    d.metric("Temperature", f"{low:g}-{high:g}", help=f"suggested {suggested:g}")
    st.plotly_chart(decision_tree([p.branch for p in advice.path], "The path through the decision tree"),
                    key="advisor-tree")
    st.dataframe(pd.DataFrame([{"step": f"{p.step}. {p.question}", "rule that fired": p.rule, "decision": p.outcome,
                                "numbers": p.detail} for p in advice.path]), hide_index=True, width="stretch")
    st.markdown(f"**Representation gap.** {advice.representation}")
    if advice.assistants:
        st.markdown("**Teacher assistants**")
        st.dataframe(pd.DataFrame([asdict_row(k, a) for k, a in enumerate(advice.assistants, 1)]), hide_index=True)
        st.caption(f"{advice.chain_rule} {advice.assistant_rule}".strip())
    stages = stage_rows(advice)
    if stages:
        st.markdown("**What each stage of the chain learns**")
        st.dataframe(pd.DataFrame(stages), hide_index=True, width="stretch")
    if advice.stage_rule:
        st.caption(advice.stage_rule)
    if advice.policy:
        st.info(advice.policy, icon=":material/rule:")


def term_text(term: dict[str, Any]) -> str:
    """One multi-level term as read in a table: "hint x1 (last)"."""
    layer = f" ({term['student_layer']})" if term["term"] not in ("kd", "attention_pattern") else ""
    return f"{term['term']} x{term['weight']:g}{layer}"


def stage_rows(advice: advisor.Advice) -> list[dict[str, Any]]:
    """A progressive chain's stages, teacher first: who teaches whom, at which temperature, with which terms
    (the config the advice opens in Launch, so the table and the form agree)."""
    if advice.mechanism != "progressive" or not advice.assistants:
        return []
    try:
        distill = advice.to_config({}, accept=advice.boundaries).distill
    except advisor.AdviceError:  # not runnable yet: the launch button says why
        return []
    names = ["teacher", *(f"assistant_{k}" for k in range(1, len(advice.assistants) + 1)), "student"]
    temperatures = distill.stage_temperatures or [distill.temperature] * (len(names) - 1)
    rows = []
    for k, (teacher, student) in enumerate(itertools.pairwise(names)):
        params = distill.stage_params[k] if distill.stage_params else distill.params
        terms = params.get("terms") or []
        rows.append({"stage": f"{teacher} → {student}", "temperature": temperatures[k],
                     "terms": ", ".join(term_text(t) for t in terms) if terms else distill.method})
    return rows


def asdict_row(k: int, assistant: advisor.Assistant) -> dict[str, Any]:
    return {"stage": f"assistant_{k}", "model": assistant.name, "width": assistant.width, "depth": assistant.depth,
            "parameters": assistant.params}


def acknowledgements(advice: advisor.Advice) -> list[str]:
    """One checkbox per NOT-FOR boundary that applies; the names of those ticked (distill anyway)."""
    return [b.name for b in advice.not_for
            if st.checkbox(f"I understand that {b.boundary[0].lower()}{b.boundary[1:].rstrip('.')}, and distill "
                           f"anyway (`{b.name}`)", key=f"adv.accept.{b.name}")]


def launch_button(advice: advisor.Advice) -> None:
    accepted = acknowledgements(advice)
    problem = advice.runnable(accepted)
    if advice.refusal(accepted):
        st.caption("Do not distill: tick the acknowledgement above to open Launch anyway; it is recorded on the "
                   "study.")
    elif problem:
        st.caption(f"Not launchable yet: {problem}.")
    if st.button("Open Launch with this advice", type="primary", disabled=bool(problem)):
        # The advice sets data, models and distillation; the training budget is the Launch form's.
        current = st.session_state.get("launch_config") or (load_config(EXAMPLE).to_dict() if EXAMPLE.is_file()
                                                             else {})
        base = {key: current[key] for key in ("data", "train", "tracking") if key in current}
        try:
            cfg = advice.to_config(base, accept=accepted)
        except advisor.AdviceError as err:
            st.error(str(err))
            return
        nav.fill_launch(cfg.to_dict(), f"the Advisor: {advice.mechanism} {advice.method}")
        nav.go("launch")


def render() -> None:
    st.title("Advisor")
    st.caption("Describe the teacher, the student and the task: the decision tree recommends how to distill, "
               "and says why.")
    raw = situation_form(data.store_uri())
    try:
        advice = advisor.advise(raw)
    except advisor.AdviceError as err:
        st.error(str(err))
        return
    show(advice)
    with st.expander("Rationale recorded on the study"):
        st.write(advice.rationale)
    launch_button(advice)


render()
