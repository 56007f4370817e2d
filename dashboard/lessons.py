"""Shared pieces of the Learn pages: the sample studies they teach with, the button that runs one, and how a
number they teach is given over its study's seeds.

Every Learn page reads real studies from the store (a fresh install loads ``sample_runs/``) and finds
them by name; where one is missing it says how to get it instead of drawing nothing. A number measured on a
study comes with its 95% interval over the study's seeds (the finished studies equal to it but for
``train.seed``), worded as Compare words it (:mod:`dashboard.seed_intervals`); a study with one seed says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import yaml

from dashboard import data, nav, numbers, seed_intervals
from dashboard.text import md
from kdcore.seed_stats import Difference

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def finished_studies(uri: str) -> pd.DataFrame:
    """Finished studies of the store, indexed by study id (the Learn pages never show running ones)."""
    frame = data.studies(uri)
    return frame[frame["status"] == "FINISHED"].set_index("study_id", drop=False)


def study_named(uri: str, name: str) -> pd.Series | None:
    """The newest finished study called ``name``, or None after telling the reader how to load it."""
    frame = finished_studies(uri)
    found = frame[frame["name"] == name]
    if found.empty:
        st.info(f"The sample study *{name}* is not in this store. Load the samples with `kdx samples load` "
                "(a fresh `kdx dashboard` does it for an empty store).", icon=":material/info:")
        return None
    return found.iloc[0]


def role_runs(uri: str, study_id: str) -> dict[str, str]:
    """Role -> run id of one study."""
    runs = data.runs(uri, (study_id,))
    return runs.set_index("tags.kd.role")["run_id"].to_dict() if not runs.empty else {}


def run_it(uri: str, example: str, overrides: list[str], label: str, key: str) -> None:
    """A button that launches a real study (an example config with ``overrides``) in its own process."""
    if st.button(label, key=key, type="primary", icon=":material/play_arrow:"):
        from kdcore import launcher  # torch and the models: only when a study is launched
        from kdcore.config import load_config

        job = launcher.launch(load_config(EXAMPLES / example, overrides), tracking_uri=uri)
        st.success(f"Queued {md(job.name)}: it trains in its own process and appears in Studies when done.",
                   icon=":material/schedule:")
        nav.link("launch", "Watch it on Launch")


# --- numbers over seeds ------------------------------------------------------------------------------------
ONE_SEED = "one seed: no interval"


def over_seeds(values: pd.Series | list[float], percent: bool) -> str:
    """A number over a configuration's seeds: ``93.1% [92.2, 94.0] · 3 seeds`` (mean and 95% t-interval, as
    :func:`seed_intervals.interval_text` gives it); with one seed its value and that it has no interval; "-"
    with none."""
    x = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 1:
        return f"{numbers.percent(x[0]) if percent else numbers.ratio(x[0])} · {ONE_SEED}"
    return seed_intervals.interval_text(x.tolist(), percent)


def difference_text(difference: Difference | None) -> str:
    """A difference of accuracies over seeds in points with its interval, the test, the seeds and the verdict
    (:meth:`Difference.describe`); from one seed only, its value and that it has no interval; "-" without one."""
    if difference is None:
        return numbers.MISSING
    if difference.n == 1 and difference.groups is None:
        return f"{numbers.points(difference.mean)} · {ONE_SEED}"
    return difference.describe()


class _Numbers(dict):
    """Texts by name for ``str.format_map``: a number the store does not have reads "-"."""

    def __missing__(self, key: str) -> str:
        return numbers.MISSING


def role_numbers(roles: pd.DataFrame) -> dict[str, str]:
    """A study's accuracies over its seeds as text (one row per seed, one column per role), by name for the
    measured numbers of a failure mode's ``why``: each role's (``{baseline}``, ``{assistant_1}``, ...) and each
    other role's share of the teacher's, seed by seed (``{assistant_1_of_teacher}``)."""
    found = _Numbers({role: over_seeds(roles[role], percent=True) for role in roles.columns})
    if "teacher" in roles:
        teacher = pd.to_numeric(roles["teacher"], errors="coerce")
        found |= {f"{role}_of_teacher": over_seeds(pd.to_numeric(roles[role], errors="coerce") / teacher, percent=True)
                  for role in roles.columns if role != "teacher"}
    return found


@st.cache_data(ttl=data.CACHE_SECONDS, show_spinner=False)
def seed_configurations(uri: str, study_ids: tuple[str, ...]) -> pd.DataFrame:
    """Which of the given studies are seeds of one configuration, as :func:`data.seed_siblings` gives it (rows
    ``of``, ``study_id``, ``seed``, ``config``), each study standing for itself: studies of one experiment whose
    configs are equal but for ``train.seed`` (:func:`kdcore.siblings.comparable`, what
    :func:`kdcore.siblings.seed_sibling_ids` calls seed siblings) share ``config``. Read from the studies' role
    runs, which carry the study's config, in one pass: asking the store for each study's siblings in turn
    takes a second or more per study."""
    from kdcore.siblings import SEED, comparable  # validates configs: imports the model registry

    runs = data.runs(uri, study_ids)
    if runs.empty:
        return pd.DataFrame(columns=data.SIBLING_COLUMNS)
    rows = []
    for _, run in runs.drop_duplicates("tags.kd.study_id").iterrows():
        params = {key.removeprefix("params."): value for key, value in run.items()
                  if key.startswith("params.") and isinstance(value, str)}
        config = f"{run.get('experiment_id')}|{sorted(comparable(params, (SEED,)).items())}"
        study_id = run["tags.kd.study_id"]
        rows.append((study_id, study_id, params.get(SEED), config))
    return pd.DataFrame(rows, columns=data.SIBLING_COLUMNS)


# --- temperature: what the Temperature page computes once per teacher, so that a slider change only looks up ---
SLIDER_TEMPERATURES = np.arange(1, 41) / 2  # the page's slider: 0.5 to 20 in steps of 0.5
CURVE_TEMPERATURES = np.round(np.geomspace(0.5, 20, 60), 3)  # the entropy curve, even on its log axis
EXAMPLE_INPUTS = 1000  # the first test inputs the page can draw (its example slider may reach further)
DRAWN = {"image", "signal", "rgbd"}  # modalities whose inputs are pictures or curves (not tokens or table rows)


def soften(probs: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
    """softmax(log p / T): the teacher's distribution at temperature T (its logits up to a constant)."""
    z = np.log(np.clip(probs, 1e-6, 1)) / temperature
    z -= z.max(-1, keepdims=True)
    q = np.exp(z)
    return q / q.sum(-1, keepdims=True)


def entropy(q: np.ndarray) -> np.ndarray:
    """Entropy in nats of each distribution along the last axis."""
    return -(q * np.log(np.clip(q, 1e-12, 1))).sum(-1)


def split_by_temperature(probs: np.ndarray, labels: np.ndarray, temperatures: np.ndarray) -> pd.DataFrame:
    """Mean entropy (nats) and dark knowledge (the probability off the true class) of the softened teacher over
    a whole split, one row per temperature."""
    rows = []
    for temperature in temperatures:
        q = soften(probs, float(temperature))
        rows.append({"entropy": float(entropy(q).mean()),
                     "dark": float(1 - q[np.arange(len(labels)), labels].mean())})
    return pd.DataFrame(rows, index=pd.Index(temperatures, name="temperature"))


@st.cache_data(ttl=data.CACHE_SECONDS * 10, show_spinner=False)
def teacher_temperatures(uri: str, run_id: str) -> pd.DataFrame:
    """:func:`split_by_temperature` of a teacher's test predictions at every slider and curve temperature, computed
    once per teacher: a slider change then costs a lookup, not a pass over the split (empty without predictions)."""
    found = data.predictions(uri, run_id)
    if not found:
        return pd.DataFrame(columns=["entropy", "dark"])
    temperatures = np.union1d(SLIDER_TEMPERATURES, CURVE_TEMPERATURES)
    return split_by_temperature(found["test_probs"].astype(float), found["test_labels"].astype(int), temperatures)


def at_temperature(table: pd.DataFrame, temperature: float) -> pd.Series:
    """The row of a :func:`split_by_temperature` table nearest to ``temperature``."""
    return table.iloc[int(np.abs(table.index.to_numpy() - temperature).argmin())]


def example_inputs(uri: str, study_id: str, labels: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The study's first test inputs, in the order of its predictions, so a page can draw the example it
    explains; or None and why not (data that must be downloaded or read from the user's files is not loaded
    for a picture, and inputs that do not match the predictions' labels are not shown)."""
    from kdcore.config import ConfigError  # imports the models' registry: only when a page draws an input
    from kdcore.registry import DATASETS, UnknownNameError

    config = data.config_yaml(uri, study_id)
    if config.value is None:
        return None, f"The study's inputs cannot be rebuilt: {config.problem}."
    name = (yaml.safe_load(config.value).get("data") or {}).get("name")
    try:
        meta = DATASETS.entry(str(name)).meta
    except UnknownNameError:
        return None, f"The dataset {md(name)} is not known to this version, so its inputs are not drawn."
    if meta.get("downloads") or meta.get("source"):
        return None, f"The inputs of {md(name)} come from files outside the store, so they are not drawn here."
    if meta.get("modality") not in DRAWN:
        return None, f"The inputs of {md(name)} are {md(meta.get('modality'))}, which this page does not draw."
    try:
        x, y = data.test_samples(config.value, min(len(labels), EXAMPLE_INPUTS))
    except (ConfigError, OSError, ValueError) as err:
        return None, f"The study's inputs cannot be rebuilt: {md(err, 200)}."
    if not np.array_equal(y, labels[:len(y)]):
        return None, "The inputs rebuilt from the study's config do not match its predictions, so none is drawn."
    if "rgb" in (meta.get("views") or {}):  # a multi-sensor scene: its camera picture
        low, high = meta["views"]["rgb"]
        x = x[:, low:high]
    return x, ""


def is_provoked(name: object) -> bool:
    """Whether a study is one of the samples made to fail on purpose (Learn -> Failure modes), by its name: its
    numbers show that failure, not what a capacity gap does."""
    return any(str(name).startswith(mode.provoked) for mode in FAILURE_MODES.values())


SEEDS = (0, 1, 2)  # each failure mode's samples: provoked and fixed over these seeds


@dataclass(frozen=True)
class Fix:
    heading: str  # what was changed, as the tab's selector shows it
    stem: str  # the sample studies' name without " seed<k>"


@dataclass(frozen=True)
class Mode:
    title: str
    what: str  # the failure, in a sentence
    provoked: str  # the provoked studies' name without " seed<k>"
    fixes: tuple[Fix, ...]  # the finding's own fix first
    why: str  # what the seeds show about the fixes, and why; a measured number is a {field} of role_numbers,
    # filled in over the provoked study's seeds


FAILURE_MODES = {  # code -> the samples that provoke it and fix it (Learn -> Failure modes)
    "capacity_mismatch": Mode(
        "Capacity mismatch", "The teacher's outputs encode more than the student can represent: chasing them "
        "leaves the student below what it reaches alone.", "provoked capacity_mismatch",
        (Fix("The finding's fix: one teacher assistant", "fixed capacity_mismatch - one assistant"),
         Fix("Labels first: alpha 0.1", "fixed capacity_mismatch - alpha 0.1")),
        "The survey's remedy, an assistant between teacher and student, does not help this student: a one-layer "
        "MLP of 32 units follows a CNN assistant no better than the CNN teacher, so the chain loses it at its "
        "last stage instead (progressive degradation on every seed). Weighting the labels (alpha 0.1) brings the "
        "student back to its baseline on two seeds of three, which says that distillation has little to give a "
        "student this small: choose a larger student, or do not distill."),
    "knowledge_confusion": Mode(
        "Knowledge type confusion", "The student reproduces the teacher's outputs (the distillation loss falls) "
        "without the skill behind them: the wrong kind of knowledge was transferred.",
        "provoked knowledge_confusion",
        (Fix("The finding's fix: outputs + relations (multi)", "fixed knowledge_confusion - outputs + relations "
             "(multi)"),
         Fix("A student that can represent it: a small 1-d CNN", "fixed knowledge_confusion - cnn1d student")),
        "Seed 0 also ran at temperatures 1, 2 and 8, the survey's test: none does better, so its finding is the "
        "critical form; seeds 1 and 2 have no siblings and get the project's warning. The teacher owes its "
        "accuracy to translation invariance, which an MLP cannot represent: adding relations to the outputs "
        "(the finding's fix) moves nothing. What clears it is a student whose architecture holds that knowledge, "
        "the advisor's step 4 (the representation gap)."),
    "overconfidence": Mode(
        "Teacher overconfidence amplification", "A near-certain teacher passes on its certainty without its "
        "accuracy: the student is more confident than it is right, also where it is wrong.",
        "provoked overconfidence",
        (Fix("The finding's fix: T 16, label smoothing 0.1, alpha 0.2", "fixed overconfidence - T 16, label "
             "smoothing 0.1, alpha 0.2"),
         Fix("The survey's fixes alone: T 16 and label smoothing 0.1", "fixed overconfidence - T 16 and label "
             "smoothing 0.1")),
        "A higher temperature and label smoothing, the survey's fixes, leave the student as miscalibrated as "
        "before while alpha is 1: smoothing acts on the label term, which alpha 1 switches off, and a student "
        "that matches the teacher's logits at any temperature copies its certainty. Giving the smoothed labels "
        "weight 0.8 (alpha 0.2) clears it on every seed, so the finding's fix does all three."),
    "cross_modal_failure": Mode(
        "Cross-modal alignment failure", "A student on another sensor learns nothing from a teacher whose "
        "samples it cannot match to its own: it stays at chance.",
        "provoked cross_modal_failure - rgb->depth unaligned",
        (Fix("The finding's fix: align on paired samples", "fixed cross_modal_failure - aligned"),),
        "Aligning the depth student's features to the RGB teacher's on paired scenes, the survey's fix, is "
        "what the finding offers, and it clears the failure on every seed."),
    "progressive_degradation": Mode(
        "Progressive learning degradation", "Each stage of a chain loses some of what the stage above knew, "
        "until little is left for the student.", "provoked progressive_degradation",
        (Fix("The finding's fix: drop assistant 1, three assistants per stage", "fixed progressive_degradation - "
             "shorter chain, ensemble of 3"),
         Fix("Skip connections to the teacher", "fixed progressive_degradation - skip to teacher"),
         Fix("No chain: distil directly", "fixed progressive_degradation - direct")),
        "None of the survey's fixes clears it on this pair. The first assistant already falls below 90% of the "
        "teacher on every seed (it keeps {assistant_1_of_teacher} of the teacher's validation accuracy), and skip "
        "connections only reach stage 2 on. A shorter chain, even with three assistants at its stage, still ends "
        "in a student that reaches {baseline} alone, far below 90% of any assistant able to teach. Without a "
        "chain nothing degrades, but the student falls more than 2 points below its baseline on two seeds of "
        "three (capacity mismatch): the student is too small for this task, whatever the chain."),
}
