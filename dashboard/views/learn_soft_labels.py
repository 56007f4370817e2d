"""Learn: temperature and soft labels, on a real teacher's test predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import data, lesson_charts, lessons, numbers
from dashboard.lessons import CURVE_TEMPERATURES, entropy, soften

DEFAULT = "digits cnn2d->mlp kd T4 seed0"


def render() -> None:
    st.title("Temperature and soft labels")
    st.caption("A teacher's output is a distribution over classes. Dividing its logits by a temperature T "
               "before the softmax spreads probability onto the wrong classes; how it spreads (which "
               "wrong classes look alike to the teacher) is the dark knowledge a student can learn from.")
    uri = data.store_uri()
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


render()
