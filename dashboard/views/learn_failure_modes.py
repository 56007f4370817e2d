"""Learn: the five failure modes, each provoked in sample studies over three seeds and shown beside the same
studies with the fix its finding offers and, where that fix does not clear it, the survey's or the one that does."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard import data, lessons, notes, numbers
from dashboard.alerts import finding_card
from dashboard.lessons import FAILURE_MODES, SEEDS
from kdcore.seed_stats import Difference, compare, paired_difference

ACCURACY = "metrics.val/best_acc"  # the findings judge validation numbers; the tables show the same
ONE_STUDY = ("One study, seed 0: its finding's numbers are that seed's, with no interval; the tables above give "
             "the accuracies over the three seeds.")


def sample_studies(uri: str, stems: dict[str, str]) -> dict[tuple[str, int], str]:
    """(heading, seed) -> study id of the newest finished study of each stem and seed that is in the store."""
    frame = lessons.finished_studies(uri).drop_duplicates("name").set_index("name")  # the newest of each name
    return {(heading, seed): str(frame.loc[f"{stem} seed{seed}", "study_id"]) for heading, stem in stems.items()
            for seed in SEEDS if f"{stem} seed{seed}" in frame.index}


def role_accuracies(uri: str, study_ids: tuple[str, ...]) -> pd.DataFrame:
    """Validation accuracy of every role of the given studies: one row per study, one column per role."""
    runs = data.runs(uri, study_ids)  # every role run of the table's studies, read once
    if runs.empty or ACCURACY not in runs:
        return pd.DataFrame(index=pd.Index(study_ids))
    return runs.pivot_table(index="tags.kd.study_id", columns="tags.kd.role", values=ACCURACY, aggfunc="first")


def seed_table(uri: str, stems: dict[str, str]) -> pd.DataFrame:
    """One row per study stem (its heading), one column per seed: the finding codes that fired, or "clear"; and
    on how many seeds nothing fired (a fix that trades its finding for another has not cleared it)."""
    found = sample_studies(uri, stems)
    rows = []
    for heading in stems:
        row, clear = {"": heading}, 0
        for seed in SEEDS:
            study_id = found.get((heading, seed))
            if study_id is None:
                row[f"seed {seed}"] = "not loaded"
                continue
            codes = [f["code"] for f in data.findings(uri, study_id).value]
            clear += not codes
            row[f"seed {seed}"] = ", ".join(codes) or "clear"
        row["no finding"] = f"{clear} of {len(SEEDS)}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("")


def seed_accuracies(uri: str, stems: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Heading -> the validation accuracy of each role of its studies: one row per seed (as text, "0"...), one
    column per role."""
    found = sample_studies(uri, stems)
    roles = role_accuracies(uri, tuple(found.values()))
    return {heading: roles.reindex([study_id for (h, _), study_id in found.items() if h == heading])
            .set_axis([str(seed) for (h, seed) in found if h == heading]) for heading in stems}


def accuracy_table(accuracies: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The key accuracies behind each verdict over the seeds, as text: one row per study (``accuracies``, the
    provoked one first), with the teacher's, the baseline's (the same student trained alone) and the distilled
    student's validation accuracy as the mean and 95% interval over its seeds; the student's difference to its
    baseline, paired by seed; and, for each fix, its student's difference to the provoked study's student over the
    seeds both have, paired by seed."""
    provoked = _by_seed(next(iter(accuracies.values())), "student")
    rows = []
    for i, (heading, roles) in enumerate(accuracies.items()):
        student, baseline = _by_seed(roles, "student"), _by_seed(roles, "baseline")
        shared = sorted(student.keys() & baseline.keys())
        row = {"study": heading, "seeds": ", ".join(roles.index) or numbers.MISSING}
        for role in ("teacher", "baseline", "student"):
            row[role] = lessons.over_seeds(roles.get(role, []), percent=True)
        row["student − baseline"] = lessons.difference_text(paired_difference(
            [student[k] for k in shared], [baseline[k] for k in shared]) if shared else None)
        row["student − provoked"] = numbers.MISSING if i == 0 else lessons.difference_text(
            against(student, provoked))
        rows.append(row)
    return pd.DataFrame(rows, columns=["study", "seeds", "teacher", "baseline", "student", "student − baseline",
                                       "student − provoked"])


def _by_seed(roles: pd.DataFrame, role: str) -> dict[str, float]:
    """Seed -> a role's accuracy, the seeds without a number left out."""
    values = pd.to_numeric(roles[role], errors="coerce") if role in roles else pd.Series(dtype=float)
    return {seed: float(v) for seed, v in values.items() if math.isfinite(v)}


def against(fix: dict[str, float], provoked: dict[str, float]) -> Difference | None:
    """The fixed study's student minus the provoked one's, over seeds: paired on the seeds both have (the two
    share each seed's initialisation and batch order), Welch's unpaired t-interval where they share fewer than
    two; None when either has no number."""
    shared = sorted(fix.keys() & provoked.keys())
    if len(shared) >= 2:
        return compare({k: fix[k] for k in shared}, {k: provoked[k] for k in shared}, paired=True)
    if not fix or not provoked:
        return None
    return compare(list(fix.values()), list(provoked.values()), paired=False)


def why(mode_why: str, provoked: pd.DataFrame) -> str:
    """A mode's ``why`` with its measured numbers filled in over the provoked study's seeds (see
    :data:`lessons.FAILURE_MODES`)."""
    return mode_why.format_map(lessons.role_numbers(provoked))


def study_side(uri: str, name: str, code: str | None) -> None:
    """A study's findings: each as Study detail shows it (``code`` first), or a note that none fired."""
    study = lessons.study_named(uri, name)
    if study is None:
        return
    st.markdown(f"*{name}*")
    findings = data.findings(uri, study["study_id"])
    notes.problem(name, findings.problem, "Open it in Study detail to diagnose it again.")
    runs = data.runs(uri, (study["study_id"],))
    if not findings.value and not findings.problem:
        st.success("No failure mode fired.", icon=":material/check_circle:")
    for finding in sorted(findings.value, key=lambda f: f["code"] != code):
        finding_card(uri, study, runs, finding)


def render() -> None:
    st.title("The five failure modes")
    st.caption("Each was provoked on purpose in sample studies over three seeds; beside them, the same studies with "
               "the fix the finding offers and, where it does not clear the finding, the survey's remedy or the "
               "change that does. The findings are this version's verdict on what the studies recorded (validation "
               "split, one root cause per study): a fix that does not clear its finding is a result too.")
    uri = data.store_uri()
    tabs = st.tabs([m.title for m in FAILURE_MODES.values()])
    for tab, (code, mode) in zip(tabs, FAILURE_MODES.items(), strict=True):
        with tab:
            st.markdown(mode.what)
            stems = {"Provoked": mode.provoked} | {fix.heading: fix.stem for fix in mode.fixes}
            accuracies = seed_accuracies(uri, stems)
            st.dataframe(seed_table(uri, stems), width="stretch")
            st.caption("Findings per seed. " + why(mode.why, accuracies["Provoked"]))
            st.dataframe(accuracy_table(accuracies), hide_index=True, width="stretch")
            st.caption("Validation accuracy of each study's roles, as the findings read them, over its seeds: the "
                       "mean and its 95% t-interval. The baseline is the same student trained alone. Student − "
                       "baseline and, for a fix, student − the provoked study's student are paired by seed (each "
                       "pair shares a seed's initialisation and batch order), with the test, the seeds and the "
                       "verdict.")
            fix = mode.fixes[0]
            if len(mode.fixes) > 1:
                headings = {f.heading: f for f in mode.fixes}
                fix = headings[st.radio("Seed 0 of the provoked study, then with", list(headings), horizontal=True,
                                        key=f"learn-fix-{code}")]
            st.subheader("Provoked, seed 0")  # one above the other: each card and its charts get the page's width
            st.caption(ONE_STUDY)
            study_side(uri, f"{mode.provoked} seed0", code)
            st.subheader("With the fix, seed 0")
            st.caption(ONE_STUDY)
            study_side(uri, f"{fix.stem} seed0", code)


render()
