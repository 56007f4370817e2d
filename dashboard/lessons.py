"""Shared pieces of the Learn pages: the sample studies they teach with, and the button that runs one.

Every Learn page reads real studies from the store (a fresh install loads ``sample_runs/``) and finds
them by name; where one is missing it says how to get it instead of drawing nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import data, nav
from dashboard.text import md

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
    why: str  # what the seeds show about the fixes, and why


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
        "teacher, and skip connections only reach stage 2 on. A shorter chain, even with three assistants at its "
        "stage, still ends in a student that reaches about 25% alone, far below 90% of any assistant able to "
        "teach. Without a chain nothing degrades, but the student falls more than 2 points below its baseline on "
        "two seeds of three (capacity mismatch): the student is too small for this task, whatever the chain."),
}
