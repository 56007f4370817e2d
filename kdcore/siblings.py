"""The same study at other temperatures: what the survey's knowledge-confusion test compares.

"Temperature scaling doesn't improve results" can only be seen across studies. Two finished studies
are temperature siblings when their configs are equal except for what a temperature sweep varies
(``distill.temperature``, ``distill.stage_temperatures``) and the keys that only name or file a study
(the ``tracking`` section). Configs are compared as this version writes them, so a study recorded
before a field existed matches one that has the field at its default.
:func:`kdcore.diagnostics.knowledge_confusion` reads the siblings' validation accuracy.
"""

from __future__ import annotations

import functools

from kdcore.config import validate
from kdcore.diagnostics import StudyResults, study_config
from kdcore.tracker import STUDY_ROLE, Tracker

SWEPT = ("distill.temperature", "distill.stage_temperatures")  # what a temperature sweep changes
NAMING = ("tracking.",)  # study name, experiment and store: where a study is filed, not what it trains
IDENTITY = ("data.name", "teacher.name", "student.name", "distill.method", "distill.mechanism", "train.seed")  # cheap
# to compare first: logged by every version, and different for most studies of a store


def comparable(params: dict[str, str]) -> dict[str, str]:
    """A study's config, flattened as this version writes it, without the temperatures and the naming keys:
    equal for temperature siblings. A config this version cannot read is compared as logged."""
    return dict(_comparable(tuple(sorted(params.items()))))


@functools.lru_cache(maxsize=256)
def _comparable(params: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    raw = study_config(StudyResults({}, dict(params)))
    flat = validate(raw).flat() if raw is not None else dict(params)
    return tuple((key, value) for key, value in sorted(flat.items())
                 if key not in SWEPT and not key.startswith(NAMING))


def temperature_sibling_ids(tracker: Tracker, study_id: str) -> list[str]:
    """The finished studies of the tracker's experiment that differ from ``study_id`` only in temperature."""
    params = tracker.get_run(study_id).params
    own = comparable(params)
    found = [run for run in tracker.find_runs({"kd.role": STUDY_ROLE}, status="FINISHED") if run.run_id != study_id
             and all(run.params.get(key) == params.get(key) for key in IDENTITY)]
    return [run.run_id for run in found if comparable(run.params) == own]


def temperature_siblings(tracker: Tracker, study_id: str) -> list[StudyResults]:
    """What each temperature sibling of ``study_id`` logged, read back for diagnostics."""
    from kdcore.study_results import study_results  # that module imports this one

    return [study_results(tracker, run_id) for run_id in temperature_sibling_ids(tracker, study_id)]
