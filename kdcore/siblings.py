"""The same study at other temperatures, or other seeds: what the knowledge-confusion test and intervals compare.

"Temperature scaling doesn't improve results" can only be seen across studies. Two finished studies
are temperature siblings when their configs are equal except for what a temperature sweep varies
(``distill.temperature``, ``distill.stage_temperatures``), the keys that only name or file a study
(the ``tracking`` section) and those that only say how it ran (checkpoint cadence, the teacher cache's cap).
Configs are compared as this version writes them, so a study recorded before a field existed matches one that
has the field at its default.
:func:`kdcore.diagnostics.knowledge_confusion` reads the siblings' validation accuracy.
"""

from __future__ import annotations

import functools

from kdcore.config import TrainConfig, validate
from kdcore.diagnostics import StudyResults, study_config
from kdcore.tracker import STUDY_ROLE, Tracker

SWEPT = ("distill.temperature", "distill.stage_temperatures")  # what a temperature sweep changes
SEED = "train.seed"
NAMING = ("tracking.",)  # study name, experiment and store: where a study is filed, not what it trains
RUNTIME = tuple(f"train.{key}" for key in TrainConfig.RUNTIME)  # how a study ran, not what it trains
IDENTITY = ("data.name", "teacher.name", "student.name", "distill.method", "distill.mechanism", "train.seed")  # cheap
# to compare first: logged by every version, and different for most studies of a store


def comparable(params: dict[str, str], varied: tuple[str, ...] = SWEPT) -> dict[str, str]:
    """A study's config, flattened as this version writes it, without the ``varied`` keys (by default the
    temperatures), the naming keys and the runtime keys: equal for siblings. A config this version cannot read is
    compared as logged."""
    return dict(_comparable(tuple(sorted(params.items())), varied))


@functools.lru_cache(maxsize=512)
def _comparable(params: tuple[tuple[str, str], ...], varied: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    raw = study_config(StudyResults({}, dict(params)))
    flat = validate(raw).flat() if raw is not None else dict(params)
    return tuple((key, value) for key, value in sorted(flat.items())
                 if key not in varied and key not in RUNTIME and not key.startswith(NAMING))


def sibling_ids(tracker: Tracker, study_id: str, varied: tuple[str, ...]) -> list[str]:
    """The finished studies of the tracker's experiment (newest first) that differ from ``study_id`` only in the
    ``varied`` keys."""
    params = tracker.get_run(study_id).params
    own = comparable(params, varied)
    found = [run for run in tracker.find_runs({"kd.role": STUDY_ROLE}, status="FINISHED") if run.run_id != study_id
             and all(run.params.get(key) == params.get(key) for key in IDENTITY if key not in varied)]
    return [run.run_id for run in found if comparable(run.params, varied) == own]


def temperature_sibling_ids(tracker: Tracker, study_id: str) -> list[str]:
    """The finished studies of the tracker's experiment that differ from ``study_id`` only in temperature."""
    return sibling_ids(tracker, study_id, SWEPT)


def seed_sibling_ids(tracker: Tracker, study_id: str) -> list[str]:
    """The finished studies equal to ``study_id`` but for ``train.seed``: one per other seed (the newest), in seed
    order. Their numbers beside the study's give an interval over seeds."""
    own_seed = tracker.get_run(study_id).params.get(SEED)
    seeds: dict[str, str] = {}
    for run_id in sibling_ids(tracker, study_id, (SEED,)):  # newest first
        seed = tracker.get_run(run_id).params.get(SEED)
        if seed != own_seed and seed not in seeds:
            seeds[seed] = run_id
    return [seeds[seed] for seed in sorted(seeds, key=_seed_order)]


def _seed_order(seed: str | None) -> tuple[int, str]:
    return (int(seed), "") if seed is not None and seed.lstrip("-").isdigit() else (0, str(seed))


def temperature_siblings(tracker: Tracker, study_id: str) -> list[StudyResults]:
    """What each temperature sibling of ``study_id`` logged, read back for diagnostics."""
    from kdcore.study_results import study_results  # that module imports this one

    return [study_results(tracker, run_id) for run_id in temperature_sibling_ids(tracker, study_id)]
