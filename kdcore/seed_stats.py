"""Did distillation help? Differences over seeds with an interval, a p-value and a verdict a reviewer accepts.

One number per seed is all a study gives, and seeds are few, so every answer here says how it was computed and how
many seeds it rests on. The student and its independent baseline share the initialisation and the batch order of
a seed, so the default comparison is *paired*: the per-seed difference student - baseline removes what the two
share and leaves the effect of distillation. Values are fractions of accuracy (higher is better): ``helps`` means
the interval of the difference lies above 0; for a lower-is-better metric, swap the arguments.

Pure numpy/scipy; pages and the CLI only format what this module returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_FROM = 10  # seeds: from here the paired interval is a bootstrap, below it a t-interval
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed, so the same seeds always give the same interval
SEEDS_CAP = 1000  # seeds_needed looks no further than this

PAIRED_T = "paired t-interval"
PAIRED_BOOTSTRAP = f"paired bootstrap (percentile, {RESAMPLES} resamples, seed {BOOTSTRAP_SEED})"
WELCH_T = "Welch t-interval"

Values = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Estimate:
    """A number over seeds: the mean and the half-width of its t-interval (None for one seed)."""

    mean: float
    half_width: float | None
    n: int

    def text(self, percent: bool) -> str:
        if percent:
            value = f"{100 * self.mean:.1f}%"
            return value if self.half_width is None else f"{value} ± {100 * self.half_width:.1f} pts"
        return f"{self.mean:.3f}" if self.half_width is None else f"{self.mean:.3f} ± {self.half_width:.3f}"


@dataclass(frozen=True)
class Difference:
    """A difference between two configurations over seeds (first minus second), and what it allows one to say.

    ``low``/``high`` bound the ``confidence`` interval (None with one seed); ``sd`` is the spread: the sample
    standard deviation of the per-seed differences (unpaired: of one seed of each, sqrt(s_a² + s_b²));
    ``p_value`` is the two-sided t-test's where it is defined; ``seeds_needed`` is given only when the verdict
    cannot tell: the seeds (per configuration) at which a difference of this mean and this spread would be resolved.
    """

    n: int  # seeds behind the difference: pairs when paired, the smaller group's when not
    mean: float
    low: float | None
    high: float | None
    method: str
    sd: float | None
    p_value: float | None
    verdict: str
    seeds_needed: int | None = None
    confidence: float = CONFIDENCE
    groups: tuple[int, int] | None = None  # seeds of each configuration, when unpaired

    def describe(self) -> str:
        """One line in accuracy points, e.g. ``+1.2 pts [+0.4, +2.0] (paired t-interval, n = 3): helps``."""
        size = f"n = {self.n}" if self.groups is None else f"n = {self.groups[0]} vs {self.groups[1]}"
        span = "" if self.low is None else f" [{_points(self.low)}, {_points(self.high)}]"
        line = f"{_points(self.mean)} pts{span} ({self.method}, {size}): {self.verdict}"
        if self.verdict in ("helps", "hurts"):
            return line
        each = "" if self.groups is None else " each"
        if self.seeds_needed is not None:
            return f"{line} (about {self.seeds_needed}{each} would resolve a difference this size at this spread)"
        if self.sd is None:
            return f"{line} (more seeds give an interval)"
        if self.mean == 0:
            return f"{line} (the mean difference is exactly 0)"
        return f"{line} (more than {SEEDS_CAP}{each} would be needed at this spread)"


@dataclass(frozen=True)
class Holm:
    """Holm-adjusted p-values and which hypotheses are rejected at ``alpha``, in the input order."""

    adjusted: tuple[float, ...]
    rejected: tuple[bool, ...]
    alpha: float


def mean_interval(values: Values, confidence: float = CONFIDENCE) -> Estimate:
    """Mean ± t((1 + confidence) / 2, n - 1) x s / sqrt(n) over independent seeds; values that are not finite
    numbers are dropped, and with one seed there is no half-width."""
    _check_confidence(confidence)
    x = _finite(values)
    if x.size == 0:
        raise ValueError("values: no value that is a number")
    if x.size < 2:
        return Estimate(float(x.mean()), None, 1)
    return Estimate(float(x.mean()), _t_half_width(x, confidence), int(x.size))


def paired_difference(student: Values, baseline: Values, confidence: float = CONFIDENCE) -> Difference:
    """Per-seed difference student - baseline (same seed = same initialisation and batch order), with its interval.

    Below ``BOOTSTRAP_FROM`` (10) seeds the interval is the paired t-interval: with so few differences a bootstrap
    sees too few distinct resamples to trust its tails, and the t-interval is exact for normal differences. From 10
    seeds it is a percentile bootstrap of the mean difference (``RESAMPLES`` resamples, fixed seed, so the answer is
    reproducible), which leans on no normality. The p-value is the paired t-test's either way (None when the
    differences have no spread). A pair with a NaN (or infinity) on either side is dropped.
    """
    _check_confidence(confidence)
    s, b = np.asarray(student, dtype=float).ravel(), np.asarray(baseline, dtype=float).ravel()
    if s.size != b.size:
        raise ValueError(f"baseline: {b.size} values for {s.size} in student; a paired difference needs one per seed")
    d = (s - b)[np.isfinite(s) & np.isfinite(b)]
    if d.size == 0:
        raise ValueError("student, baseline: no seed with a number on both sides")
    return _paired(d, confidence)


def compare(a: Values | Mapping[object, float], b: Values | Mapping[object, float], paired: bool | None = None,
            confidence: float = CONFIDENCE) -> Difference:
    """The difference a - b between two configurations over seeds.

    Paired by seed when both are mappings seed -> value over the same seeds (or ``paired=True`` with sequences of
    equal length, in seed order): then as :func:`paired_difference`. Otherwise unpaired: Welch's t-interval, which
    does not assume the two spreads are equal. ``paired=False`` forces the unpaired test.
    """
    _check_confidence(confidence)
    mappings = isinstance(a, Mapping), isinstance(b, Mapping)
    if paired is None:
        paired = all(mappings) and set(a) == set(b)
    if not paired:
        x = _finite(list(a.values()) if mappings[0] else a)
        y = _finite(list(b.values()) if mappings[1] else b)
        return _welch(x, y, confidence)
    if all(mappings):
        if set(a) != set(b):
            raise ValueError(f"b: seeds {sorted(map(str, set(a) ^ set(b)))} are not on both sides; "
                             "pairing needs the same seeds")
        seeds = sorted(a, key=str)
        return paired_difference([a[k] for k in seeds], [b[k] for k in seeds], confidence)
    if any(mappings):
        raise ValueError("paired: pairing needs a and b both as mappings seed -> value or both as sequences")
    return paired_difference(a, b, confidence)


def holm(p_values: Sequence[float], alpha: float = 0.05) -> Holm:
    """Holm-Bonferroni step-down over a family of tests: the correction a sweep states when it says which of its
    points differ from the baseline (it controls the chance of any false "differs" at ``alpha``, with no assumption
    on how the tests depend on each other, and is never weaker than plain Bonferroni).

    The i-th smallest p is multiplied by (m - i + 1), made non-decreasing along the sorted order and capped at 1;
    a hypothesis is rejected when its adjusted p-value is at most ``alpha``.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: {alpha} is not between 0 and 1")
    p = np.asarray(p_values, dtype=float).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p_values: each must be a number between 0 and 1")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return Holm(tuple(float(v) for v in adjusted), tuple(bool(v <= alpha) for v in adjusted), alpha)


# --- the pieces ---------------------------------------------------------------------------------------------
def _paired(d: np.ndarray, confidence: float) -> Difference:
    n, mean = int(d.size), float(d.mean())
    if n == 1:
        return Difference(1, mean, None, None, PAIRED_T, None, None, _cannot_tell("1 seed"), confidence=confidence)
    sd = float(d.std(ddof=1))
    if sd == 0:  # every seed gives the same difference: the interval is that difference
        low = high = mean
        method = PAIRED_T if n < BOOTSTRAP_FROM else PAIRED_BOOTSTRAP
    elif n < BOOTSTRAP_FROM:
        half = _t_half_width(d, confidence)
        low, high, method = mean - half, mean + half, PAIRED_T
    else:
        low, high = _bootstrap(d, confidence)
        method = PAIRED_BOOTSTRAP
    p = None if sd == 0 else float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    verdict = _verdict(low, high, f"{n} seeds")
    needed = _seeds_needed(mean, sd, confidence, n + 1) if verdict.startswith("cannot") else None
    return Difference(n, mean, low, high, method, sd, p, verdict, needed, confidence)


def _welch(x: np.ndarray, y: np.ndarray, confidence: float) -> Difference:
    if x.size == 0 or y.size == 0:
        raise ValueError(f"{'a' if x.size == 0 else 'b'}: no value that is a number")
    n, mean, groups = int(min(x.size, y.size)), float(x.mean() - y.mean()), (int(x.size), int(y.size))
    seeds = f"{x.size} and {y.size} seeds"
    if n < 2:  # one group's spread is unknown: no interval
        return Difference(n, mean, None, None, WELCH_T, None, None, _cannot_tell(seeds), None, confidence, groups)
    va, vb = float(x.var(ddof=1)), float(y.var(ddof=1))
    se = math.sqrt(va / x.size + vb / y.size)
    if se == 0:
        low = high = mean
        p = None
    else:  # Welch-Satterthwaite degrees of freedom
        df = se**4 / ((va / x.size) ** 2 / (x.size - 1) + (vb / y.size) ** 2 / (y.size - 1))
        half = float(stats.t.ppf((1 + confidence) / 2, df)) * se
        low, high = mean - half, mean + half
        p = float(2 * stats.t.sf(abs(mean) / se, df))
    verdict = _verdict(low, high, seeds)
    sd = math.sqrt(va + vb)
    needed = None
    if verdict.startswith("cannot") and sd > 0:  # n seeds each: df = (n - 1)(va + vb)² / (va² + vb²)
        needed = _seeds_needed(mean, sd, confidence, n + 1, (va + vb) ** 2 / (va**2 + vb**2))
    return Difference(n, mean, low, high, WELCH_T, sd, p, verdict, needed, confidence, groups)


def _t_half_width(x: np.ndarray, confidence: float) -> float:
    return float(stats.t.ppf((1 + confidence) / 2, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)


def _bootstrap(d: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the mean over ``RESAMPLES`` resamples of the differences, with replacement."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = d[rng.integers(0, d.size, size=(RESAMPLES, d.size))].mean(axis=1)  # (RESAMPLES,)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _seeds_needed(mean: float, sd: float, confidence: float, start: int, df_per_seed: float = 1.0) -> int | None:
    """The fewest seeds n >= start with t((1 + c) / 2, df) x sd / sqrt(n) < |mean|, df = df_per_seed x (n - 1);
    None when the mean is 0 or no n up to ``SEEDS_CAP`` does."""
    if mean == 0:  # no spread, however small, resolves a zero difference
        return None
    n = np.arange(max(start, 2), SEEDS_CAP + 1)
    resolved = stats.t.ppf((1 + confidence) / 2, df_per_seed * (n - 1)) * sd / np.sqrt(n) < abs(mean)
    return int(n[resolved.argmax()]) if resolved.any() else None


def _points(fraction: float) -> str:
    return f"{100 * fraction:+.1f}"


def _verdict(low: float, high: float, seeds: str) -> str:
    return "helps" if low > 0 else "hurts" if high < 0 else _cannot_tell(seeds)


def _cannot_tell(seeds: str) -> str:
    return f"cannot tell with {seeds}"


def _finite(values: Values) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: {confidence} is not between 0 and 1")
