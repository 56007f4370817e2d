"""Numbers over seeds for Compare: each selected study stands for its configuration, and the configuration's
seeds give a mean with a 95% interval, a paired student - baseline difference with its verdict, and the
difference between two configurations.

A configuration is a study's config but for ``train.seed``; its seeds are the selected studies of it and the
finished studies in the store equal to it but for the seed (:func:`dashboard.data.seed_siblings`), one study
per seed. The statistics are :mod:`kdcore.seed_stats`'; this module only gathers the values and words them.
Pure pandas, no Streamlit, so it is tested on hand-made tables.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dashboard.charts import SEED_SUFFIX
from dashboard.numbers import MISSING
from dashboard.selection import SHORT
from dashboard.text import one_line
from kdcore.seed_stats import Difference, mean_interval, paired_difference

PERCENTS = ("student_acc", "teacher_acc", "baseline_acc")  # fractions, shown as percentages
RATIOS = ("ratio_teacher", "ratio_baseline")
SWEEP_HINT = "a sweep with `seeds: [0, 1, 2]` (`kdx sweep`)"


def members(selected: list[str], siblings: pd.DataFrame, studies: pd.DataFrame) -> pd.DataFrame:
    """One row per seed of each configuration among the ``selected`` studies, configurations in selection
    order: ``config`` (0, 1, ...), ``name`` (the configuration's), ``seed``, ``selected``, and the study's
    columns from ``studies``. A seed is taken from a selected study where one has it, else from the newest
    sibling; a study without a seed is a seed of its own."""
    position = {study_id: i for i, study_id in enumerate(selected)}
    siblings = siblings[siblings["of"].isin(position)]
    order = sorted(siblings["config"].unique(), key=lambda c: min(position[s] for s in
                                                                   siblings.loc[siblings["config"] == c, "of"]))
    rows = []
    for number, config in enumerate(order):
        found = siblings[siblings["config"] == config]
        chosen = sorted(found["of"].unique(), key=position.__getitem__)
        seeds = {}
        for study_id, seed in [*((s, found.loc[found["study_id"] == s, "seed"].iloc[0]) for s in chosen),
                               *found[["study_id", "seed"]].itertuples(index=False)]:
            key = seed if isinstance(seed, str) else f"?{study_id}"  # no seed: it pairs with nothing
            seeds.setdefault(key, (study_id, seed))
        rows += [{"config": number, "seed": seed, "study_id": study_id, "selected": study_id in position}
                 for study_id, seed in seeds.values()]
    frame = pd.DataFrame(rows, columns=["config", "seed", "study_id", "selected"])
    frame = frame.merge(studies, on="study_id", how="inner")
    return frame.assign(name=frame["config"].map(_names(frame))).sort_values(["config", "seed"], key=_seed_key)


def _names(frame: pd.DataFrame) -> dict[int, str]:
    """A configuration's name: its first selected study's, without a trailing seed ("T4 seed1" -> "T4"), with
    that study's short id where two configurations would read the same."""
    first = frame[frame["selected"]].groupby("config").first()
    names = {c: one_line(SEED_SUFFIX.sub("", str(label))) or str(label) for c, label in first["label"].items()}
    taken = pd.Series(names).duplicated(keep=False)
    return {c: f"{name} ({first.loc[c, 'study_id'][:SHORT]})" if taken[c] else name for c, name in names.items()}


def _seed_key(column: pd.Series) -> pd.Series:
    """Seeds in number order (10 after 9), other columns as they are."""
    if column.name != "seed":
        return column
    return column.map(lambda s: (0, int(s), "") if str(s).isdigit() else (1, 0, str(s)))


def several_seeds(table: pd.DataFrame) -> bool:
    """Whether some configuration has two or more seeds, so intervals can be given."""
    return bool(not table.empty and table.groupby("config").size().max() > 1)


def interval_text(values: pd.Series | list[float], percent: bool) -> str:
    """Mean and 95% t-interval over seeds, e.g. ``93.1% [92.2, 94.0] · 3 seeds``; one seed is its value
    (``93.1% · 1 seed``); "-" with no value."""
    x = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(x).any():
        return MISSING
    estimate = mean_interval(x)
    scale, digits, unit = (100, 1, "%") if percent else (1, 2, "")
    text = f"{scale * estimate.mean:.{digits}f}{unit}"
    if estimate.half_width is None:
        return f"{text} · 1 seed"
    low, high = (scale * (estimate.mean + s * estimate.half_width) for s in (-1, 1))
    return f"{text} [{low:.{digits}f}, {high:.{digits}f}] · {estimate.n} seeds"


def baseline_difference(rows: pd.DataFrame) -> Difference | None:
    """Student - baseline test accuracy over a configuration's seeds, paired by seed (a study's student and
    baseline share its seed's initialisation and batch order); None without a seed that has both."""
    try:
        return paired_difference(pd.to_numeric(rows["student_acc"], errors="coerce").to_numpy(dtype=float),
                                 pd.to_numeric(rows["baseline_acc"], errors="coerce").to_numpy(dtype=float))
    except ValueError:
        return None


def by_configuration(table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: ``label`` (its name and seed count), ``study_id`` (its first selected study),
    the mean of each accuracy and ratio and, as ``<column>_half``, the half-width of its 95% t-interval (NaN
    with one seed): what the ratio bars draw."""
    rows = []
    for config, group in table.groupby("config", sort=True):
        first = group[group["selected"]].iloc[0]
        n = len(group)
        row = {"config": config, "name": first["name"], "study_id": first["study_id"], "seeds": n,
               "label": first["name"] if n == 1 else f"{first['name']} ({n} seeds)"}
        for column in (*PERCENTS, *RATIOS):
            row[column], row[f"{column}_half"] = _mean_half(group.get(column))
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_half(values: pd.Series | None) -> tuple[float, float]:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float) if values is not None else np.array([])
    if not np.isfinite(x).any():
        return math.nan, math.nan
    estimate = mean_interval(x)
    return estimate.mean, math.nan if estimate.half_width is None else estimate.half_width


def seed_list(group: pd.DataFrame) -> str:
    """The seeds of a configuration, and which were selected where not all were: ``0, 1, 2 (selected: 0)``."""
    seeds = [str(s) if isinstance(s, str) else "?" for s in group["seed"]]
    chosen = [seed for seed, selected in zip(seeds, group["selected"], strict=True) if selected]
    return ", ".join(seeds) + ("" if len(chosen) == len(seeds) else f" (selected: {', '.join(chosen)})")


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """The over-seeds table: per configuration its seeds, student accuracy and ratios as mean [95% interval],
    and the paired student - baseline difference with its verdict."""
    rows = []
    for _, group in table.groupby("config", sort=True):
        difference = baseline_difference(group)
        rows.append({"configuration": group["name"].iloc[0], "seeds": seed_list(group),
                     "student": interval_text(group["student_acc"], percent=True),
                     "student / teacher": interval_text(group["ratio_teacher"], percent=False),
                     "student / baseline": interval_text(group["ratio_baseline"], percent=False),
                     "student − baseline": difference.describe() if difference else MISSING})
    return pd.DataFrame(rows)


def accuracies(group: pd.DataFrame) -> dict[str, float]:
    """Seed -> student test accuracy of a configuration, seeds without a number left out."""
    values = pd.to_numeric(group["student_acc"], errors="coerce")
    keys = [s if isinstance(s, str) else f"?{i}" for s, i in zip(group["seed"], group["study_id"], strict=True)]
    return {key: float(v) for key, v in zip(keys, values, strict=True) if math.isfinite(v)}


def how_compared(a: dict[str, float], b: dict[str, float], difference: Difference) -> str:
    """In words: which test, why it applies, and its p-value where it has one."""
    p = "" if difference.p_value is None else f" Two-sided p = {difference.p_value:.3g}."
    if difference.groups is None:
        return (f"Paired by seed ({', '.join(sorted(a, key=_seed_sort))}): A and B share each seed's initialisation "
                f"and batch order, so each seed's difference leaves out what they share.{p}")
    return (f"Unpaired: A has seeds {_seeds(a)}, B has seeds {_seeds(b)}, so the seeds do not pair up and Welch's "
            f"t-interval treats them as two independent samples of unequal spread.{p}")


def _seeds(values: dict[str, float]) -> str:
    return ", ".join(seed if not seed.startswith("?") else "?" for seed in sorted(values, key=_seed_sort))


def _seed_sort(seed: str) -> tuple[int, int, str]:
    return (0, int(seed), "") if seed.isdigit() else (1, 0, seed)
