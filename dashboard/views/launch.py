"""Launch: a form generated from the config, a device selector, a Sweep editor over the form's config, and the
queue of studies, live.

The study (or sweep) launched last from this page is shown at the top, live while it trains, then with its key
numbers, findings, gates and a link to Study detail (a sweep: its studies finished and a link to Sweep), or its
error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
import yaml

from dashboard import data, nav, numbers, sources, sweep_editor
from dashboard.form import FieldSpec, config_fields, nest
from dashboard.sweep_editor import GRID, RANDOM, AxisChoice
from dashboard.text import md
from kdcore import launcher
from kdcore.config import ConfigError, ExperimentConfig, field_errors, load_config, validate
from kdcore.sweep_spec import is_sweep_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "digits_kd.yaml"
SECTIONS = {"data": "Data", "teacher": "Teacher", "student": "Student", "distill": "Distillation",
            "train": "Training", "tracking": "Tracking"}
ACTIVE = ("queued", "running")
# Hidden in workshop mode (kdx dashboard --workshop): they keep the example's values.
ADVANCED = {"data.val_fraction", "data.test_fraction", "data.split_seed", "train.teacher_epochs", "train.optimizer",
            "train.weight_decay", "train.momentum", "train.schedule", "train.amp", "train.threads",
            "distill.rationale", "tracking.experiment", "tracking.uri"}
TERM_COLUMNS = ["term", "weight", "student_layer", "teacher_layer"]
LAUNCHED = "launched_job"  # the job id of the study launched last from this page
SWEEP_TOTALS = "launched_sweep_studies"  # job id -> the studies of a sweep launched from this page
MODES = {GRID: "values (grid)", RANDOM: "range (random)"}
ANCHOR = "launched-study"  # the heading of its box, which the Launch button's caption links to


def starting_config() -> dict[str, Any]:
    """The study the form opens on: one handed over by Study detail, else the quick digits example."""
    if "launch_config" in st.session_state:
        return st.session_state["launch_config"]
    return (load_config(EXAMPLE) if EXAMPLE.is_file() else ExperimentConfig()).to_dict()


def widget(spec: FieldSpec, value: Any, key: str) -> Any:
    """The input for one field; bounds are not enforced here so that mistakes are shown, not hidden."""
    label, help_text = spec.label, f"{spec.description} Allowed: {spec.allowed()}."
    if spec.kind == "choice":
        options = list(spec.options)
        index = options.index(value) if value in options else 0
        return st.selectbox(label, options, index=index, key=key, help=help_text)
    if spec.kind == "bool" and spec.optional:  # empty is a third answer ("decide for me"), not false
        options = [None, True, False]
        return st.selectbox(label, options, index=options.index(value) if value in options else 0, key=key,
                            help=help_text, format_func=lambda v: "empty (the default rule)" if v is None else str(v))
    if spec.kind == "bool":
        return st.checkbox(label, value=bool(value), key=key, help=help_text)
    if spec.kind in {"int", "float"}:
        number = st.number_input(label, value=value, key=key, help=help_text,
                                 step=1 if spec.kind == "int" else None,
                                 format="%d" if spec.kind == "int" else "%g")
        return int(number) if spec.kind == "int" and number is not None else number
    if spec.kind in {"mapping", "list"}:
        empty: Any = {} if spec.kind == "mapping" else []
        text = st.text_area(label, value=yaml.safe_dump(value or empty, default_flow_style=True, width=1000).strip(),
                            key=key, help=help_text, height=68)
        try:
            parsed = yaml.safe_load(text)
        except Exception:  # YAMLError, a value PyYAML cannot build (2024-13-01), or nesting too deep
            return text  # a string: the validator reports it as the wrong type
        return empty if parsed is None else parsed
    if spec.kind == "longtext":
        text = st.text_area(label, value="" if value is None else str(value), key=key, help=help_text, height=100)
        return None if spec.optional and not text.strip() else text
    text = st.text_input(label, value="" if value is None else str(value), key=key, help=help_text)
    return None if spec.optional and not text.strip() else text


def mechanism_of(initial: dict[str, Any]) -> str:
    """The mechanism chosen in the form (its widget may sit further down the page than the teacher)."""
    version = st.session_state.get("form_version", 0)
    return st.session_state.get(f"form{version}.distill.mechanism",
                                initial.get("distill", {}).get("mechanism", "offline"))


def form(initial: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Render every field; return the raw config and the problems found, shown under their fields."""
    version = st.session_state.get("form_version", 0)
    values, slots = {}, {}
    specs = config_fields()
    columns = st.columns(3)
    for i, (section, title) in enumerate(SECTIONS.items()):
        with columns[i % 3].container(border=True):
            st.markdown(f"**{title}**")
            if section == "teacher":
                teacher_slot = st.empty()
            for spec in (s for s in specs if s.section == section):
                current = initial.get(section, {}).get(spec.path.split(".")[1], spec.default)
                if nav.workshop() and spec.path in ADVANCED:
                    values[spec.path] = current
                    continue
                if not spec.applies(values | {"distill.mechanism": mechanism_of(initial)}
                                    if section == "teacher" else values):
                    values[spec.path] = spec.default  # another mechanism's field: left at its default
                    continue
                values[spec.path] = widget(spec, current, key=f"form{version}.{spec.path}")
                slots[spec.path] = st.empty()
                st.caption(spec.allowed())
            if section == "teacher" and "teacher.name" not in slots:
                values.update({f"teacher.{k}": v for k, v in initial.get("teacher", {}).items()})
                teacher_slot.caption("This mechanism trains no teacher: the student learns from peers or from "
                                     "itself.")
    raw = nest(values)
    replaced, refused = sources.own_inputs(initial, version)
    for section, fields in replaced.items():
        raw[section] = {**raw[section], **fields} if section == "data" else fields
    term_editor(raw, version)
    errors = field_errors(raw) | refused
    own = st.container()
    for path, message in errors.items():
        (slots.get(path) or (own if path.split(".")[0] in replaced else st)).error(
            f"{path}: {message}" if path not in slots else message, icon=":material/error:")
    return raw, errors


def term_editor(raw: dict[str, Any], version: int) -> None:
    """For ``multi``: its weighted terms as an editable table, which becomes ``distill.params.terms``."""
    distill = raw.get("distill", {})
    if distill.get("method") != "multi":
        return
    from kdcore.methods.multi import Multi
    from kdcore.methods.terms import TERMS

    params = distill.get("params")
    terms = params.get("terms") if isinstance(params, dict) else None
    if not isinstance(terms, list) or not terms:
        terms = [spec.model_dump() for spec in Multi.Params().terms]
    st.markdown("**Terms of multi-level distillation** (one row per term; layers: penultimate, last, blockN)")
    edited = st.data_editor(
        pd.DataFrame(terms, columns=TERM_COLUMNS).astype({"student_layer": "string", "teacher_layer": "string"}),
        num_rows="dynamic", key=f"form{version}.terms", width="stretch",
        column_config={
            "term": st.column_config.SelectboxColumn("term", options=list(TERMS), required=True),
            "weight": st.column_config.NumberColumn("weight", min_value=0.0, default=1.0),
            "student_layer": st.column_config.TextColumn("student layer", default="penultimate"),
            "teacher_layer": st.column_config.TextColumn("teacher layer (empty = same name)"),
        })
    distill["params"] = {"terms": [{k: v for k, v in row.items() if (isinstance(v, str) and v) or
                                    (isinstance(v, int | float) and not pd.isna(v))}
                                   for row in edited.to_dict("records")]}


@st.cache_data(ttl=60, show_spinner=False)
def devices() -> list[dict[str, str]]:
    """What torch sees (opening a CUDA context per GPU costs time, so it is asked once a minute)."""
    return launcher.available_devices()


def device_choice() -> str:
    devices_now = devices()
    labels = {d["value"]: d["label"] for d in devices_now}
    return st.selectbox("Device", list(labels), format_func=labels.get, key="device",
                        help="What torch sees on this machine. Queued studies are pinned to a free GPU.")


def queue(uri: str) -> None:
    """Studies started from here (or by anyone on this machine). While one is queued or running the list
    refreshes itself every 2 s, alone (the form is left as it is); otherwise nothing reruns on its own, so
    nothing moves while the form is being filled in."""
    active = any(job.status in ACTIVE for job in launcher.list_jobs())
    (live_queue if active else queue_list)(uri)


@st.fragment(run_every=2)
def live_queue(uri: str) -> None:
    """The queue, refreshed every 2 s; once every study has ended, the page reruns once, which stops it."""
    if not queue_list(uri):
        st.rerun()


def queue_list(uri: str) -> bool:
    """The last ten studies launched, with their progress; whether any is still queued or running."""
    jobs = launcher.list_jobs()
    finished = {j.job_id for j in jobs if j.status not in ACTIVE}
    if finished - st.session_state.get("seen_finished", set()):
        data.clear()  # a study ended: tables elsewhere must show it
    st.session_state["seen_finished"] = finished
    if not jobs:
        st.caption("No studies launched from this machine yet.")
        return False
    for job in jobs[:10]:
        with st.container(border=True):
            head, status, action = st.columns([4, 1, 1])
            head.markdown(f"**{md(job.name or job.job_id)}**  \n`{job.study_id or 'waiting for its study id'}`")
            status.markdown(f"`{job.status.upper()}`" + (f" on `{job.slot}`" if job.slot else ""))
            if job.status in ACTIVE and action.button("Cancel", key=f"cancel-{job.job_id}"):
                launcher.cancel(job.job_id)
                st.rerun(scope="fragment")
            if job.status == "failed" and job.message:
                st.error(md(job.message, 2000))
            if job.study_id and job.status in ACTIVE:
                if job.kind == "sweep":
                    st.caption(sweep_editor.progress_text(sweep_editor.finished_count(uri, job.study_id),
                                                          st.session_state.get(SWEEP_TOTALS, {}).get(job.job_id)))
                else:
                    progress_table(uri, job.study_id)
    return len(finished) < len(jobs)


def progress_table(uri: str, study_id: str) -> None:
    """Each role of a running study: its epochs done, loss, validation accuracy and time left."""
    table = data.progress(uri, study_id)
    if table.empty:
        return
    table["progress"] = table["epoch"] / pd.to_numeric(table["epochs"], errors="coerce")
    table = numbers.as_percent(table, ["val_acc"])
    st.dataframe(table[["role", "status", "progress", "epoch", "loss", "val_acc", "eta_s"]],
                 hide_index=True, width="stretch", column_config={
                     "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
                     "val_acc": numbers.percent_column("val acc"),
                     "loss": st.column_config.NumberColumn("loss", format="%.3f"),
                     "eta_s": st.column_config.NumberColumn("ETA (s)", format="%.0f")})


def launched(uri: str) -> None:
    """The study launched last from this page: live while it is queued or running, then what came of it."""
    job_id = st.session_state.get(LAUNCHED)
    if not job_id:
        return
    try:
        job = launcher.get_job(job_id)
    except ValueError:  # its folder was removed
        del st.session_state[LAUNCHED]
        return
    if job.status in ACTIVE:
        live_launched(uri, job_id)
    else:
        launched_box(uri, job)


@st.fragment(run_every=2)
def live_launched(uri: str, job_id: str) -> None:
    """The launched study, refreshed every 2 s; once it has ended, the page reruns once, which stops it."""
    job = launcher.get_job(job_id)
    launched_box(uri, job)
    if job.status not in ACTIVE:
        st.rerun()


def launched_box(uri: str, job: launcher.Job) -> None:
    """One bordered box: the launched study's name and status, then its progress, its results or its error."""
    with st.container(border=True, key="launched"):
        head, hide = st.columns([5, 1], vertical_alignment="center")
        head.subheader(f"Launched: {md(job.name or job.job_id)}", anchor=ANCHOR)
        head.markdown(f"`{job.status.upper()}`" + (f" on `{job.slot}`" if job.slot else "")
                      + f" · `{job.study_id or f'waiting for its {job.kind} id'}`")
        if hide.button("Hide", key="launched-hide", help=f"Hide this box (the {job.kind} stays in the queue below)"):
            del st.session_state[LAUNCHED]
            st.rerun()
        if job.kind == "sweep":
            sweep_outcome(uri, job)
        elif job.status == "queued":
            st.caption("Waiting for a free slot.")
        elif job.status == "running" and job.study_id:
            progress_table(uri, job.study_id)
        elif job.status == "failed":
            st.error(md(job.message or "It failed without a message; see its log.", 2000), icon=":material/error:")
        elif job.status == "killed":
            st.warning(md(job.message or "Cancelled.", 2000), icon=":material/cancel:")
        elif job.status == "finished" and job.study_id:
            results(uri, job.study_id)


def sweep_outcome(uri: str, job: launcher.Job) -> None:
    """A launched sweep: how many of its studies have finished, its error, and a link to it on Sweep."""
    total = st.session_state.get(SWEEP_TOTALS, {}).get(job.job_id)
    if job.status == "queued":
        st.caption("Waiting for a free slot.")
    if job.study_id:
        finished = sweep_editor.finished_count(uri, job.study_id)
        text = sweep_editor.progress_text(finished, total)
        if total:
            st.progress(min(finished / total, 1.0), text=text)
        else:
            st.caption(text)
    if job.status == "failed":
        st.error(md(job.message or "It failed without a message; see its log.", 2000), icon=":material/error:")
    elif job.status == "killed":
        st.warning(md(job.message or "Cancelled.", 2000), icon=":material/cancel:")
    if job.study_id:
        st.page_link(nav.pages()["sweep"], label="Open in Sweep", icon=":material/grid_on:",
                     query_params={"sweep": job.study_id[:8]})


def finished_row(uri: str, study_id: str) -> pd.Series | None:
    """The finished study as Studies lists it; the cached table is read again once when it lags behind."""
    for attempt in range(2):
        frame = data.studies(uri)
        found = frame[frame["study_id"] == study_id]
        if not found.empty and found.iloc[0]["status"] == "FINISHED":
            return found.iloc[0]
        if attempt == 0:
            data.clear()
    return None


def results(uri: str, study_id: str) -> None:
    """The finished study's key numbers, findings and gates, and a link to everything else in Study detail."""
    study = finished_row(uri, study_id)
    if study is None:
        st.warning("Its results are not in the store yet.", icon=":material/hourglass_empty:")
        return
    codes, gates = study["finding_codes"], study["gates_passed"]
    with st.container(horizontal=True):
        st.metric("Student accuracy", numbers.percent(study["student_acc"]))
        st.metric("Student / teacher", numbers.ratio(study["ratio_teacher"]))
        st.metric("Student / baseline", numbers.ratio(study["ratio_baseline"]))
        st.metric("Findings", len(codes), help=md(", ".join(codes)) if codes else "No failure mode detected")
        st.metric("Quality gates passed", "-" if pd.isna(gates) else f"{int(gates)} of 10")
    st.page_link(nav.pages()["study"], label="Open in Study detail", icon=":material/query_stats:",
                 query_params={"id": study_id})


def study_config(raw: dict[str, Any], device: str) -> ExperimentConfig:
    """The study the form holds, on the chosen device: what Launch runs, and the base of a sweep."""
    return validate({**raw, "train": {**raw.get("train", {}), "device": device}})


# --- the Sweep editor ---------------------------------------------------------------------------------------
def sweep_section(raw: dict[str, Any], errors: dict[str, str], device: str, uri: str) -> None:
    """Vary fields of the form's study over values or ranges, repeated per seed, and launch it as one sweep."""
    with st.expander("Sweep editor: vary this study over values and seeds", icon=":material/grid_on:"):
        st.caption("Vary some fields of the study above, each over a list of values (grid) or a range drawn at "
                   "random, and repeat every point over seeds: each point's student is compared with the baseline "
                   "of the same seed.")
        axes = [axis_input(spec, value) for spec, value in varied(raw)]
        seeds, samples, most, name = sweep_settings(raw, any(a.mode == RANDOM for a in axes))
        base = text = ""  # every widget is drawn either way, so that none comes and goes with an error
        if errors:
            st.caption("Fix the fields marked in red first: a sweep starts from the study above.")
        elif not axes:
            st.caption("Pick the fields to vary.")
        else:
            config = study_config(raw, device)
            base = sweep_editor.base_yaml(config)
            text = sweep_editor.to_yaml(sweep_editor.sweep_file(axes, seeds, name=name, samples=samples,
                                                                max_studies=most))
            text = text if preview(uri, config, base, text, {a.mode for a in axes}) else ""
        sweep_actions(base, text, name, uri)


def preview(uri: str, config: ExperimentConfig, base: str, text: str, modes: set[str]) -> bool:
    """The sweep's study count and estimate, or the one-line error that stops it; whether it may run."""
    if modes == {GRID, RANDOM}:
        st.caption("Grid points and random points run one after the other, not crossed: a random point keeps "
                   "the grid fields at the study's values, and a grid point the random ones.")
    found = sweep_editor.validate(base, text)
    if found.error:
        st.error(found.error, icon=":material/error:")
        return False
    same = sweep_editor.same_config(config)
    st.markdown(f"**{found.studies} studies.** "
                + sweep_editor.estimate(sweep_editor.past_wall_times(uri, same), found.studies, same))
    return True


def varied(raw: dict[str, Any]) -> list[tuple[FieldSpec, Any]]:
    """The fields picked to vary, each with its value in the form."""
    values = {f"{section}.{key}": value for section, fields in raw.items() if isinstance(fields, dict)
              for key, value in fields.items()}
    specs = [spec for spec in sweep_editor.variable(config_fields(), values)
             if not (nav.workshop() and spec.path in ADVANCED)]
    chosen = st.multiselect("Fields to vary", [spec.path for spec in specs], key="sweep-fields",
                            placeholder="Choose the fields a sweep varies, e.g. distill.temperature")
    by_path = {spec.path: spec for spec in specs}
    return [(by_path[path], values.get(path)) for path in chosen if path in by_path]


def axis_input(spec: FieldSpec, value: Any) -> AxisChoice:
    """One varied field: values to run each (grid), or a range (a number) or choices (the rest) drawn at random."""
    key = f"sweep.{spec.path}"
    with st.container(border=True):
        left, right = st.columns([2, 3])
        mode = left.radio(f"**{spec.path}**", list(MODES), format_func=MODES.get, key=f"{key}.mode",
                          help=f"{spec.description} Allowed: {spec.allowed()}.")
        if spec.kind in ("choice", "bool"):
            options = list(spec.options) if spec.kind == "choice" else [True, False]
            picked = right.multiselect("Values" if mode == GRID else "Drawn from", options, key=f"{key}.values",
                                       default=[value] if value in options else None)
            return AxisChoice(spec.path, mode, picked)
        if mode == GRID:
            text = right.text_input("Values, comma-separated", value=_shown(value), key=f"{key}.grid",
                                    placeholder="e.g. 1, 2, 4, 8")
            return AxisChoice(spec.path, GRID, sweep_editor.parse_values(text))
        low, high, log = right.columns(3, vertical_alignment="bottom")
        number = {"step": 1, "format": "%d"} if spec.kind == "int" else {"step": None, "format": "%g"}
        value = float(value) if spec.kind == "float" and value is not None else value
        return AxisChoice(spec.path, RANDOM, ranged=True, integer=spec.kind == "int",
                          low=low.number_input("Low", value=value, key=f"{key}.low", **number),
                          high=high.number_input("High", value=value, key=f"{key}.high", **number),
                          log=log.checkbox("Log scale", key=f"{key}.log"))


def _shown(value: Any) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def sweep_settings(raw: dict[str, Any], drawn: bool) -> tuple[list[Any], int, int, str]:
    """Seeds, random points, the most studies allowed and the sweep's name (each study's name starts with it)."""
    seeds, samples, most = st.columns(3)
    picked = seeds.text_input("Seeds", ", ".join(map(str, sweep_editor.SEEDS)), key="sweep-seeds",
                              help="Every point runs once per seed; its student is compared with the baseline "
                                   "of the same seed.")
    count = samples.number_input("Random points", min_value=1, value=sweep_editor.SAMPLES, step=1,
                                 key="sweep-samples", disabled=not drawn,
                                 help="How many points are drawn from the random ranges.")
    limit = most.number_input("At most (studies)", min_value=1, value=sweep_editor.MAX_STUDIES, step=1,
                              key="sweep-max", help="A sweep of more studies than this is refused.")
    default = raw.get("tracking", {}).get("study_name") or \
        f"{raw.get('data', {}).get('name')} {raw.get('distill', {}).get('method')} sweep"
    name = st.text_input("Sweep name", default, key="sweep-name", help="Each study's name starts with it.")
    return sweep_editor.parse_values(picked), int(count), int(limit), name


def sweep_actions(base: str, text: str, name: str, uri: str) -> None:
    """Launch the sweep, or download its two files to run with kdx sweep; without a valid sweep (``text`` empty)
    the buttons are there, disabled."""
    launch, sweep_file, base_file = st.columns([1, 1, 1])
    clicked = launch.button("Launch sweep", type="primary", disabled=not text, key="sweep-launch")
    sweep_file.download_button("Download sweep file", text, file_name=sweep_editor.SWEEP_FILE, mime="text/yaml",
                               key="sweep-download", disabled=not text, icon=":material/download:")
    base_file.download_button("Download its base config", base, file_name=sweep_editor.BASE_FILE, mime="text/yaml",
                              key="sweep-download-base", disabled=not base, icon=":material/download:")
    st.caption(f"Runs `kdx sweep` in its own process and logs to `{uri}`; or save both files in one folder and run "
               f"`kdx sweep {sweep_editor.SWEEP_FILE}`.")
    if clicked:
        launch_sweep(base, text, name, uri)


def launch_sweep(base: str, text: str, name: str, uri: str) -> None:
    """Check every study's config (a combination of values may fail where each value alone passed), then write
    the sweep's two files into a folder of its own and queue it."""
    with st.spinner("Checking every study's config"):
        checked = sweep_editor.validate(base, text, every_point=True)
    if checked.error:
        st.error(checked.error, icon=":material/error:")
        return
    path = sweep_editor.write(launcher.sweep_folder(), base, text)
    job = launcher.launch_sweep(path, [], name=name, tracking_uri=uri)
    st.session_state[LAUNCHED] = job.job_id
    st.session_state.setdefault(SWEEP_TOTALS, {})[job.job_id] = checked.studies
    st.toast(f"Queued sweep {job.job_id}: its progress is at the top of the page")
    st.markdown(f"Queued {checked.studies} studies. [Follow them at the top of the page](#{ANCHOR}).")


def example_summary(path: Path) -> str:
    """The first sentence of an example's header comment: what it shows."""
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").strip())
    sentence = " ".join(header).split(". ")[0].rstrip(".")
    if len(sentence) > 90:
        sentence = sentence[:89].rsplit(" ", 1)[0] + "…"
    name = path.relative_to(EXAMPLES).with_suffix("").as_posix() if path.is_relative_to(EXAMPLES) else path.stem
    return f"{name}: {sentence}" if sentence else name


def example_picker() -> None:
    """Fill the form from one of the configs in ``examples/`` (the worked examples among them)."""
    paths = sorted(path for path in EXAMPLES.rglob("*.yaml")  # byo/: recipes on your own files
                   if not is_sweep_file(path))
    if not paths:
        return
    source = st.session_state.get("launch_source", f"the example {EXAMPLE.stem} (the default)")
    from_example = source.startswith("the example")  # else the box would name an example the form does not hold
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    chosen = left.selectbox("Start from an example", paths, format_func=example_summary, key="launch-example",
                            index=(paths.index(EXAMPLE) if EXAMPLE in paths else 0) if from_example else None,
                            placeholder="Choose an example to load instead")
    if right.button("Load example", disabled=chosen is None):
        try:
            config = load_config(chosen).to_dict()
        except ConfigError as err:  # a recipe whose inputs are not written yet (python -m examples.byo.make_inputs)
            st.error(str(err), icon=":material/error:")
            return
        nav.fill_launch(config, f"the example {example_summary(chosen).split(':')[0]}")
        st.rerun()
    st.caption(f"The form below holds **{md(source, 200)}**; edit any field, or load an example instead.")


def render() -> None:
    st.title("Launch a study")
    uri = data.store_uri()
    top = st.container()  # filled last: a study launched in this run shows there at once
    example_picker()
    raw, errors = form(starting_config())
    device = device_choice()
    left, right = st.columns([1, 4])
    if left.button("Launch", type="primary", disabled=bool(errors)):
        job = launcher.launch(study_config(raw, device), tracking_uri=uri)
        st.session_state[LAUNCHED] = job.job_id
        st.toast(f"Queued {job.job_id}: its progress is at the top of the page")
        right.markdown(f"Queued. [Follow it at the top of the page](#{ANCHOR}), live.")
    else:
        right.caption("Fix the fields marked in red to launch." if errors else
                      f"Runs `kdx run` in its own process and logs to `{uri}`.")
    sweep_section(raw, errors, device, uri)
    st.subheader("Queue")
    queue(uri)
    with top:
        launched(uri)


render()
