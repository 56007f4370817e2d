"""Seed statistics: paired and Welch intervals checked against scipy and by hand, the bootstrap from 10 seeds,
verdicts and the seeds that would resolve a difference, Holm's step-down, and the one-line rendering."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kdcore.seed_stats import (
    PAIRED_BOOTSTRAP,
    PAIRED_T,
    WELCH_T,
    Difference,
    compare,
    holm,
    mean_interval,
    paired_difference,
)

STUDENT = [0.812, 0.825, 0.806, 0.831, 0.819]
BASELINE = [0.801, 0.809, 0.804, 0.815, 0.802]


def seeded(n: int, shift: float, spread: float, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Baseline accuracies and student accuracies ``shift`` above them, each pair with its own noise."""
    rng = np.random.default_rng(seed)
    baseline = rng.normal(0.80, 0.02, n)
    return baseline + shift + rng.normal(0, spread, n), baseline


# --- intervals ------------------------------------------------------------------------------------------------
def test_hand_computed_paired_t_interval() -> None:
    d = paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert (d.n, d.mean, d.sd, d.method) == (3, 2.0, 1.0, PAIRED_T)
    half = 4.302653 * 1.0 / math.sqrt(3)  # t(0.975, 2) x sd / sqrt(n)
    assert half == pytest.approx(2.4842, abs=1e-4)
    assert d.low == pytest.approx(2 - half, abs=1e-6) and d.high == pytest.approx(2 + half, abs=1e-6)


def test_paired_t_interval_and_p_value_match_scipy() -> None:
    d = paired_difference(STUDENT, BASELINE)
    reference = stats.ttest_rel(STUDENT, BASELINE)
    ci = reference.confidence_interval(0.95)
    assert d.low == pytest.approx(ci.low, rel=1e-9) and d.high == pytest.approx(ci.high, rel=1e-9)
    assert d.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert d.sd == pytest.approx(np.std(np.subtract(STUDENT, BASELINE), ddof=1))
    narrower = paired_difference(STUDENT, BASELINE, confidence=0.8)
    ci80 = reference.confidence_interval(0.8)
    assert narrower.low == pytest.approx(ci80.low, rel=1e-9) and narrower.high == pytest.approx(ci80.high, rel=1e-9)


def test_welch_interval_and_p_value_match_scipy() -> None:
    a, b = [0.81, 0.83, 0.80, 0.84], [0.79, 0.80, 0.78, 0.83, 0.76, 0.81]
    d = compare(a, b)
    reference = stats.ttest_ind(a, b, equal_var=False)
    ci = reference.confidence_interval(0.95)
    assert d.method == WELCH_T and d.groups == (4, 6) and d.n == 4
    assert d.mean == pytest.approx(np.mean(a) - np.mean(b))
    assert d.low == pytest.approx(ci.low, rel=1e-9) and d.high == pytest.approx(ci.high, rel=1e-9)
    assert d.p_value == pytest.approx(reference.pvalue, rel=1e-9)


def test_mean_interval_is_the_t_half_width() -> None:
    e = mean_interval([1.0, 2.0, 3.0])
    assert (e.mean, e.n) == (2.0, 3) and e.half_width == pytest.approx(2.4842, abs=1e-4)
    x = [0.81, 0.79, 0.84, float("nan"), 0.80]
    e = mean_interval(x, confidence=0.9)
    finite = [v for v in x if not math.isnan(v)]
    ci = stats.ttest_1samp(finite, 0).confidence_interval(0.9)
    assert e.n == 4 and e.half_width == pytest.approx((ci.high - ci.low) / 2, rel=1e-9)
    one = mean_interval([0.8])
    assert (one.mean, one.half_width, one.n) == (0.8, None, 1) and one.text(percent=True) == "80.0%"


# --- the bootstrap from 10 seeds -------------------------------------------------------------------------------
def test_bootstrap_from_ten_seeds_is_reproducible_and_close_to_the_t_interval() -> None:
    student, baseline = seeded(40, shift=0.01, spread=0.01)
    d = paired_difference(student, baseline)
    assert d.method == PAIRED_BOOTSTRAP and d.method.startswith("paired bootstrap (percentile, 10000 resamples")
    assert paired_difference(student, baseline) == d  # the fixed seed: the same seeds give the same interval
    assert d.low < d.mean < d.high
    ci = stats.ttest_rel(student, baseline).confidence_interval(0.95)
    assert d.low == pytest.approx(ci.low, abs=0.1 * (ci.high - ci.low))
    assert d.high == pytest.approx(ci.high, abs=0.1 * (ci.high - ci.low))
    assert d.p_value == pytest.approx(stats.ttest_rel(student, baseline).pvalue, rel=1e-9)
    assert paired_difference(student[:9], baseline[:9]).method == PAIRED_T
    assert paired_difference(student[:10], baseline[:10]).method == PAIRED_BOOTSTRAP


# --- verdicts ----------------------------------------------------------------------------------------------------
def test_verdicts_helps_hurts_and_cannot_tell() -> None:
    assert paired_difference(STUDENT, BASELINE).verdict == "helps"
    assert paired_difference(BASELINE, STUDENT).verdict == "hurts"
    unclear = paired_difference([0.81, 0.80, 0.83], [0.80, 0.80, 0.80])
    assert unclear.verdict == "cannot tell with 3 seeds" and unclear.low < 0 < unclear.high
    assert paired_difference(*seeded(30, shift=0.01, spread=0.005)).verdict == "helps"
    assert paired_difference(*seeded(30, shift=-0.01, spread=0.005)).verdict == "hurts"
    assert compare(BASELINE, STUDENT).verdict == "cannot tell with 5 and 5 seeds"
    assert compare([0.90, 0.91, 0.92], [0.80, 0.81, 0.82]).verdict == "helps"


def test_one_seed_gives_no_interval() -> None:
    d = paired_difference([0.82], [0.80])
    assert d.verdict == "cannot tell with 1 seed" and d.low is d.high is None
    assert d.sd is None and d.p_value is None and d.seeds_needed is None
    assert d.mean == pytest.approx(0.02)


def test_no_spread_gives_a_degenerate_interval_judged_by_the_sign() -> None:
    for n in (3, 12):
        up = paired_difference([0.81] * n, [0.80] * n)
        assert up.sd == 0 and up.low == up.high == up.mean and up.verdict == "helps" and up.p_value is None
        assert paired_difference([0.80] * n, [0.81] * n).verdict == "hurts"
        level = paired_difference([0.8] * n, [0.8] * n)
        assert level.verdict == f"cannot tell with {n} seeds" and level.seeds_needed is None


# --- seeds needed ------------------------------------------------------------------------------------------------
def test_seeds_needed_solves_the_t_condition() -> None:
    d = paired_difference([0.81, 0.80, 0.83], [0.80, 0.80, 0.80])
    need, q = d.seeds_needed, 0.975
    assert need is not None and need > d.n
    assert stats.t.ppf(q, need - 1) * d.sd / math.sqrt(need) < abs(d.mean)
    assert stats.t.ppf(q, need - 2) * d.sd / math.sqrt(need - 1) >= abs(d.mean)  # and one fewer does not


def test_a_smaller_spread_needs_fewer_seeds() -> None:
    base = [0.80, 0.80, 0.80]
    wide = paired_difference([0.83, 0.78, 0.82], base)  # mean +1 pt, wide spread
    narrow = paired_difference([0.815, 0.80, 0.815], base)  # mean +1 pt, narrower spread
    assert wide.mean == pytest.approx(narrow.mean)
    assert wide.sd > narrow.sd and wide.seeds_needed > narrow.seeds_needed
    assert paired_difference([0.81, 0.79, 0.80], base).seeds_needed is None  # mean 0: no seeds resolve it
    assert paired_difference(STUDENT, BASELINE).seeds_needed is None  # resolved already


# --- inputs ------------------------------------------------------------------------------------------------------
def test_pairs_with_a_nan_are_dropped() -> None:
    nan = float("nan")
    d = paired_difference([0.81, nan, 0.83, 0.82], [0.80, 0.80, nan, 0.79])
    assert d.n == 2 and d.mean == pytest.approx(0.02)
    assert paired_difference([*STUDENT, nan], [*BASELINE, 0.5]) == paired_difference(STUDENT, BASELINE)


def test_mismatched_or_empty_inputs_are_one_line_errors_naming_the_argument() -> None:
    with pytest.raises(ValueError, match=r"^baseline: 2 values for 3 in student") as error:
        paired_difference([0.8, 0.8, 0.8], [0.8, 0.8])
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"^student, baseline: no seed"):
        paired_difference([float("nan")], [0.8])
    with pytest.raises(ValueError, match=r"^confidence: "):
        paired_difference([0.8], [0.8], confidence=95)
    with pytest.raises(ValueError, match=r"^b: seeds"):
        compare({0: 0.8, 1: 0.8}, {0: 0.8, 2: 0.8}, paired=True)
    with pytest.raises(ValueError, match=r"^baseline: 3 values for 2"):
        compare([0.8, 0.8], [0.8, 0.8, 0.8], paired=True)


# --- compare -------------------------------------------------------------------------------------------------------
def test_compare_pairs_by_seed_when_the_seeds_match() -> None:
    a, b = dict(enumerate(STUDENT)), dict(enumerate(BASELINE))
    shuffled = {k: b[k] for k in (4, 0, 2, 1, 3)}  # the order of a mapping does not matter, the seed does
    assert compare(a, shuffled) == paired_difference(STUDENT, BASELINE)
    assert compare(STUDENT, BASELINE, paired=True) == paired_difference(STUDENT, BASELINE)
    assert compare(STUDENT, BASELINE).method == WELCH_T  # sequences alone say nothing of seeds
    assert compare(a, b, paired=False).method == WELCH_T
    partial = compare(a, {0: 0.80, 1: 0.81, 9: 0.79})  # seeds that do not match: unpaired
    assert partial.method == WELCH_T and partial.groups == (5, 3)


# --- Holm --------------------------------------------------------------------------------------------------------
def test_holm_hand_computed() -> None:
    result = holm([0.01, 0.04, 0.03, 0.005])
    assert result.adjusted == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert result.rejected == (True, False, False, True)
    stepped = holm([0.5, 0.4, 0.001])  # 0.001 x 3, 0.4 x 2, then 0.5 x 1 raised to 0.8: never below an earlier step
    assert stepped.adjusted == pytest.approx((0.8, 0.8, 0.003)) and stepped.rejected == (False, False, True)
    capped = holm([0.6, 0.7, 0.001])  # 0.6 x 2 = 1.2: capped at 1
    assert capped.adjusted == pytest.approx((1.0, 1.0, 0.003))
    assert holm([]).adjusted == ()


def test_holm_is_the_step_down_and_monotone() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = rng.uniform(0, 0.2, rng.integers(1, 12))
        result = holm(p, alpha=0.05)
        order = np.argsort(p)
        adjusted = np.asarray(result.adjusted)[order]
        assert (np.diff(adjusted) >= 0).all() and (adjusted <= 1).all() and (adjusted >= p[order]).all()
        m, stepped = len(p), np.zeros(len(p), dtype=bool)  # the procedure as stated: stop at the first miss
        for i, k in enumerate(order):
            if p[k] > 0.05 / (m - i):
                break
            stepped[k] = True
        assert list(result.rejected) == stepped.tolist()
    with pytest.raises(ValueError, match=r"^p_values: "):
        holm([0.1, 1.2])


# --- rendering -----------------------------------------------------------------------------------------------------
def test_describe_in_points() -> None:
    helps = Difference(3, 0.012, 0.004, 0.020, PAIRED_T, 0.003, 0.02, "helps")
    assert helps.describe() == "+1.2 pts [+0.4, +2.0] (paired t-interval, n = 3): helps"
    unclear = paired_difference([0.81, 0.80, 0.83], [0.80, 0.80, 0.80])
    assert unclear.describe() == ("+1.3 pts [-2.5, +5.1] (paired t-interval, n = 3): cannot tell with 3 seeds "
                                  "(about 8 would resolve a difference this size at this spread)")
    assert compare([0.81, 0.80, 0.83], [0.80, 0.79, 0.80]).describe().startswith(
        "+1.7 pts [-1.6, +5.0] (Welch t-interval, n = 3 vs 3): cannot tell with 3 and 3 seeds (about 6 each")
    assert paired_difference([0.82], [0.80]).describe() == (
        "+2.0 pts (paired t-interval, n = 1): cannot tell with 1 seed (more seeds give an interval)")
