"""Learn: temperature and soft labels, on a real teacher's test predictions; then whether temperature matters,
answered by a real sweep over temperatures and seeds (``examples/sweep_lesson_temperature.yaml``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import data, lesson_charts, lessons, nav, numbers, sweep_editor
from dashboard.lessons import CURVE_TEMPERATURES, entropy, soften
from dashboard.text import md
from kdcore.seed_stats import compare, mean_interval
from kdcore.sweep_spec import count, load_sweep

if TYPE_CHECKING:
    from kdcore.launcher import Job

DEFAULT = "digits cnn2d->mlp kd T4 seed0"
LESSON_SWEEP = lessons.EXAMPLES / "sweep_lesson_temperature.yaml"
AXIS = "distill.temperature"
SWEEP_JOB = "learn-t-sweep-job"  # the job id of the sweep launched from this page
ACTIVE = ("queued", "running")


def render() -> None:
    st.title("Temperature and soft labels")
    st.caption("A teacher's output is a distribution over classes. Dividing its logits by a temperature T "
               "before the softmax spreads probability onto the wrong classes; how it spreads (which "
               "wrong classes look alike to the teacher) is the dark knowledge a student can learn from.")
    uri = data.store_uri()
    teacher_lesson(uri)
    does_it_matter(uri)


def teacher_lesson(uri: str) -> None:
    """Soft labels at a temperature, on the teacher of a study the reader picks."""
    frame = lessons.finished_studies(uri)
    with_teacher = frame[frame["teacher_acc"].notna()] if "teacher_acc" in frame else frame.iloc[:0]
    if with_teacher.empty:
        lessons.study_named(uri, DEFAULT)
        return
    ids = list(with_teacher.index)
    default = next((i for i in ids if with_teacher.loc[i, "name"] == DEFAULT), ids[0])
    study_id = st.selectbox("Teacher of the study", ids, index=ids.index(default), key="learn-t-study",
                            format_func=lambda i: with_teacher.loc[i, "label"])
    run_id = lessons.role_runs(uri, study_id).get("teacher", "")
    found = data.predictions(uri, run_id)
    if not found:
        st.info("This study's teacher has no stored predictions.")
        return
    temperature_lesson(uri, study_id, run_id, found["test_probs"].astype(float), found["test_labels"].astype(int))


@st.fragment
def temperature_lesson(uri: str, study_id: str, run_id: str, probs: np.ndarray, labels: np.ndarray) -> None:
    """Everything the two sliders change. A fragment: moving a slider reruns only this part, and the split's
    numbers at every temperature come from :func:`lessons.teacher_temperatures`, computed once per teacher."""
    left, right = st.columns(2)
    example = left.slider("Test example", 0, len(labels) - 1, 0, key="learn-t-example")
    temperature = right.slider("Temperature T", 0.5, 20.0, 4.0, 0.5, key="learn-t-temperature")
    q, target = soften(probs[example], temperature), int(labels[example])
    split = lessons.teacher_temperatures(uri, run_id)
    mean = lessons.at_temperature(split, temperature)
    numbers_at(q, target, mean, len(labels))
    st.caption(over_teacher_seeds(uri, study_id, temperature))
    picture, bars, curve = st.columns([2, 3, 3])
    bars.plotly_chart(lesson_charts.soft_labels(q, target, temperature), key="learn-t-bars")
    example_curve = entropy(soften(np.repeat(probs[example][None], len(CURVE_TEMPERATURES), 0),
                                   CURVE_TEMPERATURES[:, None]))
    mean_curve = split["entropy"].reindex(CURVE_TEMPERATURES).to_numpy()
    curve.plotly_chart(lesson_charts.entropy_against_temperature(CURVE_TEMPERATURES, example_curve, mean_curve,
                                                                 temperature, np.log(len(q))), key="learn-t-entropy")
    with picture:  # last: the first drawing may rebuild the dataset, and the numbers should not wait for it
        example_picture(uri, study_id, labels, example, q)
    st.subheader("Run it")
    st.caption("Distil the digits student at this temperature: a real study, about 20 s on a laptop CPU.")
    lessons.run_it(uri, "digits_kd.yaml", [f"distill.temperature={temperature:g}",
                                           f"tracking.study_name=learn - digits kd T{temperature:g} seed0"],
                   f"Run it at T = {temperature:g}", "learn-t-run")


def numbers_at(q: np.ndarray, target: int, mean: pd.Series, size: int) -> None:
    """The lesson's numbers as text: this example's dark knowledge and entropy beside the whole split's means."""
    ceiling = f"ln K = {np.log(len(q)):.2f} nats is a uniform guess"
    a, b, c, d, e = st.columns(5)
    a.metric("True class", str(target))
    b.metric("Dark knowledge: this example", numbers.percent(1 - q[target]),
             help="The probability the teacher puts off the true class at this temperature.")
    c.metric(f"Dark knowledge: test-split mean ({numbers.count(size)})", numbers.percent(mean["dark"]))
    d.metric("Entropy: this example", f"{entropy(q):.2f} nats", help=ceiling)
    e.metric("Entropy: test-split mean", f"{mean['entropy']:.2f} nats", help=ceiling)


def over_teacher_seeds(uri: str, study_id: str, temperature: float) -> str:
    """The test-split means at ``temperature`` over the teachers of the study's seeds (the study and its finished
    seed siblings), each with its 95% t-interval: how much of the lesson is this one teacher's."""
    frame = data.seed_siblings(uri, (study_id,)).value
    runs = [lessons.role_runs(uri, member).get("teacher", "") for member in frame["study_id"]] if len(frame) else []
    tables = [lessons.teacher_temperatures(uri, run_id) for run_id in runs if run_id]
    rows = [lessons.at_temperature(table, temperature) for table in tables if not table.empty]
    if len(rows) < 2:
        return ("These are one teacher's numbers (one seed, so no interval): run this study over more seeds, "
                "e.g. with a sweep, to see how much they move.")
    dark = mean_interval([row["dark"] for row in rows])
    spread = mean_interval([row["entropy"] for row in rows])
    return (f"Over the teachers of this study's {len(rows)} seeds, at T = {temperature:g}: dark knowledge "
            f"{dark.text(percent=True)}, entropy {spread.mean:.2f} ± {spread.half_width:.2f} nats "
            "(mean ± half the 95% t-interval).")


def example_picture(uri: str, study_id: str, labels: np.ndarray, example: int, q: np.ndarray) -> None:
    """The example itself, so its soft labels can be read against what it looks like."""
    inputs, problem = lessons.example_inputs(uri, study_id, labels)
    if inputs is None or example >= len(inputs):
        st.caption(problem or f"Only the first {numbers.count(len(inputs))} test inputs are drawn.")
        return
    runner_up = int(np.argsort(q)[-2]) if int(np.argmax(q)) == int(labels[example]) else int(np.argmax(q))
    st.plotly_chart(lesson_charts.example_input(inputs[example], f"Test example {example}, class {labels[example]}"),
                    key="learn-t-input")
    st.caption(f"Apart from class {labels[example]}, the teacher finds it closest to class {runner_up} "
               f"({numbers.percent(q[runner_up])} at this T).")


# --- does temperature matter here? a sweep answers -------------------------------------------------------------
def does_it_matter(uri: str) -> None:
    """The Sweep it button, the sweep's progress, and its answer: each temperature against the baseline, and the
    best temperature against the worst, over the same seeds."""
    spec = load_sweep(LESSON_SWEEP)
    temperatures = ", ".join(f"{t:g}" for t in spec.grid[AXIS])
    st.subheader("Does temperature matter here?")
    st.caption(f"One study per temperature cannot say: the seed moves accuracy too. Sweep it: digits at T = "
               f"{temperatures}, each over seeds {', '.join(map(str, spec.seeds))}, {count(spec)} real studies (the "
               "teacher and the baseline of a seed are trained once and shared), a minute or two on a laptop CPU. "
               "Each temperature's student is compared with the baseline of the same seed.")
    if st.button("Sweep it", key="learn-t-sweep", type="primary", icon=":material/grid_on:"):
        from kdcore import launcher  # torch and the models: only when a sweep is launched

        job = launcher.launch_sweep(LESSON_SWEEP, [], name=spec.name, tracking_uri=uri)
        st.session_state[SWEEP_JOB] = job.job_id
    job = launched_sweep()
    if job is not None and job.status in ACTIVE:
        live_sweep(uri, job.job_id, count(spec))
        return
    if job is not None and job.status != "finished":
        st.error(md(job.message or f"The sweep {job.status}; see its log.", 2000), icon=":material/error:")
    sweep_id = job.study_id if job is not None and job.status == "finished" else newest_sweep(uri, spec.name)
    if sweep_id:
        answer(uri, sweep_id)
    elif job is None:
        st.caption("No temperature sweep in this store yet.")


def launched_sweep() -> Job | None:
    """The sweep launched from this page in this session, as the launcher sees it now; None when there is none."""
    job_id = st.session_state.get(SWEEP_JOB)
    if not job_id:
        return None
    from kdcore import launcher

    try:
        return launcher.get_job(job_id)
    except ValueError:  # its folder was removed
        del st.session_state[SWEEP_JOB]
        return None


def sweep_progress(uri: str, job_id: str, total: int) -> None:
    """The running sweep's studies finished; once it has ended, the page reruns once to answer."""
    from kdcore import launcher

    job = launcher.get_job(job_id)
    if job.status == "queued":
        st.caption("Waiting for a free slot: the sweep starts when the studies ahead of it are done.")
    elif not job.study_id:
        st.caption("Starting.")
    else:
        finished = sweep_editor.finished_count(uri, job.study_id)
        st.progress(min(finished / total, 1.0), text=sweep_editor.progress_text(finished, total))
    if job.status not in ACTIVE:
        data.clear()  # its studies are new in the store
        st.rerun()


live_sweep = st.fragment(sweep_progress, run_every=2)  # refreshed every 2 s, alone


def newest_sweep(uri: str, name: str) -> str | None:
    """The newest finished sweep of this lesson in the store (by its name), so the answer outlives the session."""
    from dashboard import sweeps  # torch: only on the way to an answer

    listing = sweeps.listing(uri)
    found = listing[(listing["name"] == name) & (listing["status"] == "FINISHED")]
    return None if found.empty else str(found.iloc[0]["sweep_id"])


def answer(uri: str, sweep_id: str) -> None:
    """The sweep's answer from its summary: a row per temperature, then the best against the worst."""
    from dashboard import sweeps  # torch: only on the way to an answer

    summary = sweeps.stored_summary(uri, sweep_id).value
    if summary is None:
        st.warning("The sweep's summary is not in the store yet.", icon=":material/hourglass_empty:")
        return
    rows = sorted((r for r in summary["points"] if r.get("mean") is not None), key=lambda r: r["values"][AXIS])
    st.caption(f"From the sweep {md(summary['name'])} ({sweep_id[:8]}): {summary['finished']} of "
               f"{summary['studies']} studies finished.")
    if not rows:
        st.warning("None of its studies finished, so it cannot answer.", icon=":material/error:")
        return
    st.dataframe(pd.DataFrame([gain_row(r) for r in rows]), hide_index=True, column_config={
        "student − baseline": st.column_config.NumberColumn(format="%+.1f pts", help="Mean over seeds")})
    st.caption(f"Each verdict is for one temperature alone; Sweep also corrects them for testing {len(rows)} "
               "temperatures at once (Holm).")
    if len(rows) > 1:
        between(rows)
    st.page_link(nav.pages()["sweep"], label="Open in Sweep", icon=":material/grid_on:",
                 query_params={"sweep": sweep_id[:8]})


def gain_row(row: dict) -> dict:
    """One temperature: its student − baseline gain in points, the 95% interval, the seeds and the verdict."""
    low, high = row.get("low"), row.get("high")
    interval = "-" if low is None or high is None else f"[{100 * low:+.1f}, {100 * high:+.1f}]"
    return {"T": f"{row['values'][AXIS]:g}", "student − baseline": 100 * row["mean"], "95% interval": interval,
            "seeds": len(row["seeds"]), "verdict": row["verdict"]}


def between(rows: list[dict]) -> None:
    """The best temperature against the worst: the students' test accuracies, paired by seed."""
    best, worst = max(rows, key=lambda r: r["mean"]), min(rows, key=lambda r: r["mean"])
    seeds = set(best["seeds"]) & set(worst["seeds"])
    if not seeds:
        return
    accuracy = [{s: a for s, a in zip(r["seeds"], r["student_acc"], strict=True) if s in seeds} for r in (best, worst)]
    diff = compare(*accuracy)
    pair = f"T = {best['values'][AXIS]:g} against T = {worst['values'][AXIS]:g}"
    if diff.verdict == "helps":
        st.success(f"**Yes, here:** {pair}, the best and the worst temperature: {diff.describe()}.",
                   icon=":material/check_circle:")
    else:
        st.info(f"**{diff.verdict.capitalize()} whether temperature matters here:** {pair}, the best and the worst "
                f"temperature: {diff.describe()}.", icon=":material/help:")
    st.caption(f"Student test accuracy, paired by seed (same initialisation and batches). The pair is picked as "
               f"the best and the worst of {len(rows)} temperatures on these same numbers, which favours finding a "
               "difference: a clear verdict here is weaker evidence than it reads, a cannot tell stands.")


render()
