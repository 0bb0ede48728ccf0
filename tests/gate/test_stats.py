"""Known answers for the gate's statistics on synthetic samples.

Noise model: a latency-like figure, lognormal around a median of 100 (ms)
with sigma 0.05 (a 5% coefficient of variation: repeated timings of one
build on a quiet machine). A 10% shift multiplies the median by 1.10.

Every rate is measured over seeded trials, so the tests are deterministic
and each bound has a binomial margin (3 standard errors) rather than luck.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from reports.gate.comparison import _apply_holm, compare_runsets
from reports.gate.measurements import Measurement, RunSet
from reports.gate.rules import GateConfig
from reports.gate.stats import bootstrap_ratio_ci, compare_samples, holm_adjust

MEDIAN, SIGMA, N = 100.0, 0.05, 20
ALPHA = 0.05
# the bootstrap interval is reported, never decides a verdict: the rate tests
# below use a coarse one to stay fast (the interval has its own test)
FAST = {"n_resamples": 199}


def samples(rng: np.random.Generator, factor: float = 1.0, n: int = N, sigma: float = SIGMA) -> np.ndarray:
    return MEDIAN * factor * rng.lognormal(0.0, sigma, n)


def margin(p: float, trials: int) -> float:
    return 3.0 * math.sqrt(p * (1.0 - p) / trials)


def test_detects_a_10_percent_slowdown_at_n20():
    # tolerance 5%: a 10% shift is beyond it. (With tolerance == the shift the
    # observed ratio straddles the line and detection is a coin flip by design:
    # asv's rule reports only changes beyond the tolerance.)
    trials, hits = 200, 0
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        a, b = samples(rng), samples(rng, 1.10)
        c = compare_samples(a, b, figure="ttfa_ms", alpha=ALPHA, tolerance=0.05, seed=seed, **FAST)
        hits += c.verdict == "regression"
    assert hits / trials >= 0.90, f"detected {hits}/{trials}"


def test_equal_distributions_flagged_no_more_often_than_alpha():
    # tolerance 0 so only the Mann-Whitney test decides: its false-positive
    # rate is what alpha promises
    trials, flagged = 500, 0
    for seed in range(trials):
        rng = np.random.default_rng(10_000 + seed)
        c = compare_samples(samples(rng), samples(rng), alpha=ALPHA, tolerance=0.0, seed=seed, **FAST)
        flagged += c.verdict != "same"
    assert flagged / trials <= ALPHA + margin(ALPHA, trials), f"flagged {flagged}/{trials}"


def test_equal_integer_figures_with_ties_are_not_over_flagged():
    # counts and whole milliseconds tie a lot; the tie-corrected test must not
    # turn ties into significance
    trials, flagged = 300, 0
    for seed in range(trials):
        rng = np.random.default_rng(20_000 + seed)
        a, b = rng.poisson(3.0, N).astype(float), rng.poisson(3.0, N).astype(float)
        flagged += compare_samples(a, b, alpha=ALPHA, tolerance=0.0, seed=seed, **FAST).verdict != "same"
    assert flagged / trials <= ALPHA + margin(ALPHA, trials), f"flagged {flagged}/{trials}"


def test_improvement_is_reported_as_improvement():
    rng = np.random.default_rng(1)
    c = compare_samples(samples(rng), samples(rng, 0.80), figure="ttfa_ms", tolerance=0.10)
    assert c.verdict == "improvement"
    assert c.ratio < 0.9 and c.ci_high < 1.0


def test_direction_follows_better():
    rng = np.random.default_rng(2)
    a, b = samples(rng), samples(rng, 1.3)
    assert compare_samples(a, b, better="lower").verdict == "regression"
    assert compare_samples(a, b, better="higher").verdict == "improvement"  # e.g. throughput went up
    assert compare_samples(a, b, better="none").verdict == "changed"


def test_significant_but_within_tolerance_is_the_same():
    # thousands of raw values make a 3% shift significant; it is not a regression
    rng = np.random.default_rng(3)
    a, b = samples(rng, n=3000), samples(rng, 1.03, n=3000)
    c = compare_samples(a, b, tolerance=0.10)
    assert c.significant and not c.beyond_tolerance and c.verdict == "same"


def test_abs_tolerance_keeps_tiny_figures_from_reading_as_large_ratios():
    rng = np.random.default_rng(4)
    a, b = 0.2 + 0.01 * rng.random(N), 0.4 + 0.01 * rng.random(N)  # 2x, but 0.2 ms
    assert compare_samples(a, b, tolerance=0.10, abs_tolerance=5.0).verdict == "same"
    assert compare_samples(a, b, tolerance=0.10, abs_tolerance=0.0).verdict == "regression"


@pytest.mark.parametrize("n_a,n_b", [(4, 20), (20, 4), (0, 0)])
def test_too_few_samples_is_undecided(n_a, n_b):
    rng = np.random.default_rng(5)
    c = compare_samples(samples(rng, n=n_a), samples(rng, 2.0, n=n_b), min_samples=5)
    assert c.verdict == "undecided"
    assert "too few samples" in c.note and f"{n_a} vs {n_b}" in c.note


def test_non_finite_values_do_not_count_as_samples():
    c = compare_samples([1.0, 2.0, math.nan, math.inf, 3.0, 4.0], [1.0] * 10, min_samples=5)
    assert c.verdict == "undecided" and c.n_a == 4


def test_bootstrap_interval_covers_the_true_ratio():
    trials, covered = 200, 0
    for seed in range(trials):
        rng = np.random.default_rng(30_000 + seed)
        lo, hi = bootstrap_ratio_ci(samples(rng), samples(rng, 1.10), seed=seed)
        covered += lo <= 1.10 <= hi
    # nominal 95%; a percentile interval of medians at n=20 may run a little short
    assert covered / trials >= 0.95 - margin(0.95, trials) - 0.02, f"covered {covered}/{trials}"


def test_holm_adjustment_is_monotone_and_bounded():
    adj = holm_adjust([0.01, 0.04, 0.03, math.nan, 0.5])
    assert adj[0] == pytest.approx(0.04) and adj[2] == pytest.approx(0.09) and adj[1] == pytest.approx(0.09)
    assert math.isnan(adj[3]) and adj[4] == pytest.approx(0.5)


def _runset(source: str, rng: np.random.Generator, factors: dict[str, float], repeats: int = 6) -> RunSet:
    return RunSet(source, [Measurement(f"repeat-{i + 1}", figures={k: float(MEDIAN * f * rng.lognormal(0, SIGMA))
                                                                  for k, f in factors.items()})
                           for i in range(repeats)])


def test_many_equal_figures_keep_the_family_wise_rate_at_alpha():
    # eight equal figures compared at once: without Holm a third of the
    # comparisons would flag one; with it (as compare_runsets applies it),
    # any false flag stays near alpha
    trials, any_flag, any_flag_raw = 100, 0, 0
    for seed in range(trials):
        rng = np.random.default_rng(40_000 + seed)
        comps = [compare_samples(samples(rng), samples(rng), alpha=ALPHA, tolerance=0.0, seed=k, **FAST)
                 for k in range(8)]
        any_flag_raw += any(c.verdict != "same" for c in comps)
        _apply_holm(comps, ALPHA)
        any_flag += any(c.verdict != "same" for c in comps)
    assert any_flag / trials <= ALPHA + margin(ALPHA, trials), f"{any_flag}/{trials}"
    assert any_flag_raw > any_flag  # the correction is what keeps it there


def test_runsets_name_the_shifted_figure_and_only_it():
    cfg = GateConfig(source="test")
    rng = np.random.default_rng(6)
    base = {"ttfa_p95_ms": 1.0, "rss_peak_mb": 1.0, "loop_busy_fraction": 1.0}
    res = compare_runsets(_runset("a", rng, base, N), _runset("b", rng, {**base, "ttfa_p95_ms": 1.5}, N), cfg)
    assert [c.figure for c in res.regressions] == ["ttfa_p95_ms"]
    assert res.improvements == [] and len(res.decided) == 3


def test_runsets_of_two_repeats_are_undecided_on_flat_figures():
    cfg = GateConfig(source="test")
    rng = np.random.default_rng(7)
    res = compare_runsets(_runset("a", rng, {"x_ms": 1.0}, 2), _runset("b", rng, {"x_ms": 3.0}, 2), cfg)
    assert [c.verdict for c in res.comparisons] == ["undecided"]
