"""Learn: temperature and soft labels, on a real teacher's test predictions."""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard import data, lesson_charts, lessons

DEFAULT = "digits cnn2d->mlp kd T4 seed0"
TEMPERATURES = np.round(np.geomspace(0.5, 20, 60), 3)


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): the teacher's distribution at temperature T (its logits up to a constant)."""
    z = np.log(np.clip(probs, 1e-6, 1)) / temperature
    z -= z.max(-1, keepdims=True)
    q = np.exp(z)
    return q / q.sum(-1, keepdims=True)


def entropy(q: np.ndarray) -> np.ndarray:
    return -(q * np.log(np.clip(q, 1e-12, 1))).sum(-1)


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
    found = data.predictions(uri, lessons.role_runs(uri, study_id).get("teacher", ""))
    if not found:
        st.info("This study's teacher has no stored predictions.")
        return
    probs, labels = found["test_probs"].astype(float), found["test_labels"].astype(int)
    left, right = st.columns(2)
    example = left.slider("Test example", 0, len(labels) - 1, 0, key="learn-t-example")
    temperature = right.slider("Temperature T", 0.5, 20.0, 4.0, 0.5, key="learn-t-temperature")
    q = soften(probs[example], temperature)
    target = labels[example]
    a, b, c = st.columns(3)
    a.metric("True class", str(target))
    b.metric("Dark knowledge (off the true class)", f"{1 - q[target]:.1%}")
    c.metric("Entropy", f"{entropy(q):.2f} nats", help=f"ln K = {np.log(len(q)):.2f} is a uniform guess")
    example_curve = entropy(soften(probs[example][None].repeat(len(TEMPERATURES), 0), TEMPERATURES[:, None]))
    mean_curve = np.array([entropy(soften(probs, t)).mean() for t in TEMPERATURES])
    left, right = st.columns(2)
    left.plotly_chart(lesson_charts.soft_labels(q, target, temperature), key="learn-t-bars")
    right.plotly_chart(lesson_charts.entropy_against_temperature(TEMPERATURES, example_curve, mean_curve,
                                                                 temperature, np.log(len(q))), key="learn-t-entropy")
    mean_dark = 1 - soften(probs, temperature)[np.arange(len(labels)), labels].mean()
    st.caption(f"Over the whole test split at T = {temperature:g}: {mean_dark:.1%} of the probability lies off "
               "the true class.")
    st.subheader("Run it")
    st.caption("Distil the digits student at this temperature: a real study, about 20 s on a laptop CPU.")
    lessons.run_it(uri, "digits_kd.yaml", [f"distill.temperature={temperature:g}",
                                           f"tracking.study_name=learn - digits kd T{temperature:g} seed0"],
                   f"Run it at T = {temperature:g}", "learn-t-run")


render()
