"""Is a figure different between two sets of measurements? asv's rule.

A difference counts only when it is both *significant* (Mann-Whitney U, two
sided, no normality assumption: latencies are skewed and repeats are few) and
*beyond a tolerance* (the ratio of medians leaves [1/(1+tol), 1+tol]). The
first guards against noise, the second against significant-but-irrelevant
shifts, which large raw samples (thousands of frame gaps) always produce.

The ratio of medians (candidate / baseline) carries a bootstrap confidence
interval so a report can say "1.31x [1.18, 1.46]" rather than a bare number.

scipy.stats is imported in the functions that use it: its import costs ~1.5 s
of CPU (scipy 1.17 parses docstrings as it loads), and every run's wrapper
imports this module to check its gate rules, while only a comparison needs it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

# Bootstrapping thousands of raw frame gaps adds nothing to the interval but
# time; a seeded subsample keeps it bounded and reproducible.
_BOOTSTRAP_MAX_N = 2000


@dataclass
class Comparison:
    """One figure compared between a baseline (a) and a candidate (b)."""

    figure: str
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    ratio: float  # median_b / median_a (inf when a is 0 and b is not)
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    beyond_tolerance: bool
    # "regression" | "improvement" | "same" | "undecided" | "changed" (no preferred direction)
    verdict: str
    better: str = "lower"  # "lower" | "higher" | "none"
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("ratio", "ci_low", "ci_high", "median_a", "median_b", "p_value"):
            v = d[k]
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return d

    def describe(self) -> str:
        if self.verdict == "undecided":
            return f"{self.figure}: undecided ({self.note})"
        ratio = "inf" if math.isinf(self.ratio) else f"{self.ratio:.3g}x"
        ci = "" if math.isnan(self.ci_low) else f" [{self.ci_low:.3g}, {self.ci_high:.3g}]"
        return (
            f"{self.figure}: {self.median_a:.4g} -> {self.median_b:.4g} ({ratio}{ci}, "
            f"p={self.p_value:.2g}, n={self.n_a}/{self.n_b})"
        )


def ratio_of_medians(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = float(np.median(a)), float(np.median(b))
    if ma == 0.0:
        return 1.0 if mb == 0.0 else math.copysign(math.inf, mb)
    return mb / ma


def bootstrap_ratio_ci(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = 1999,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(b)/median(a).

    Percentile, not BCa: BCa's jackknife of a median is degenerate on samples
    with ties (counts, integer milliseconds) and O(n^2) on large ones.
    Returns (nan, nan) when the interval is undefined (a median of 0 in a).
    """
    rng = np.random.default_rng(seed)
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.size > _BOOTSTRAP_MAX_N:
        a = rng.choice(a, _BOOTSTRAP_MAX_N, replace=False)
    if b.size > _BOOTSTRAP_MAX_N:
        b = rng.choice(b, _BOOTSTRAP_MAX_N, replace=False)
    if a.size < 2 or b.size < 2:
        return math.nan, math.nan

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        mx = np.median(x, axis=axis)
        my = np.median(y, axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return my / mx

    # a resample whose baseline median is 0 gives an infinite or NaN ratio and
    # numpy and scipy warn; the interval is then reported undefined below
    from scipy import stats as sps  # imported where used: see the module docstring

    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        res = sps.bootstrap(
            (a, b),
            stat,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            paired=False,
            random_state=rng,
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return math.nan, math.nan
    return lo, hi


def compare_samples(
    a: Sequence[float],
    b: Sequence[float],
    *,
    figure: str = "",
    better: str = "lower",
    alpha: float = 0.05,
    tolerance: float = 0.10,
    abs_tolerance: float = 0.0,
    min_samples: int = 5,
    confidence: float = 0.95,
    seed: int = 0,
    n_resamples: int = 1999,
) -> Comparison:
    """Compare baseline samples `a` with candidate samples `b`.

    - `better`: which direction is good for this figure ("lower" for
      latencies, "higher" for throughput, "none" to report a change without
      calling it good or bad).
    - `tolerance`: relative change of the median that is still "the same"
      (0.10 = 10%, asv's default factor of 1.1).
    - `abs_tolerance`: absolute change of the median (in the figure's unit)
      that is still "the same"; keeps 0.2 ms -> 0.4 ms from reading as 2x.
    - `min_samples`: fewer samples on either side and the figure is
      "undecided" rather than guessed at.
    - `n_resamples`: bootstrap resamples of the ratio's interval; the
      interval is reported, never decides, so only its precision depends on it.
    """
    if better not in ("lower", "higher", "none"):
        raise ValueError(f"better must be lower|higher|none, not {better!r}")
    xa = np.asarray([v for v in a if v is not None and math.isfinite(v)], dtype=float)
    xb = np.asarray([v for v in b if v is not None and math.isfinite(v)], dtype=float)
    nan = math.nan
    if xa.size < min_samples or xb.size < min_samples:
        return Comparison(
            figure, int(xa.size), int(xb.size),
            float(np.median(xa)) if xa.size else nan,
            float(np.median(xb)) if xb.size else nan,
            nan, nan, nan, nan, False, False, "undecided", better,
            note=f"too few samples to decide ({xa.size} vs {xb.size}, need {min_samples} each)",
        )
    ma, mb = float(np.median(xa)), float(np.median(xb))
    ratio = ratio_of_medians(xa, xb)
    if np.ptp(np.concatenate([xa, xb])) == 0.0:
        p = 1.0  # all values identical: mannwhitneyu would warn and return nan
    else:
        from scipy import stats as sps  # imported where used: see the module docstring

        p = float(sps.mannwhitneyu(xb, xa, alternative="two-sided", method="auto").pvalue)
    lo, hi = bootstrap_ratio_ci(xa, xb, confidence=confidence, seed=seed, n_resamples=n_resamples)
    significant = p < alpha
    rel_beyond = not (1.0 / (1.0 + tolerance) <= ratio <= 1.0 + tolerance)
    beyond = rel_beyond and abs(mb - ma) > abs_tolerance
    if not (significant and beyond):
        verdict = "same"
    elif better == "none":
        verdict = "changed"
    elif (mb > ma) == (better == "lower"):
        verdict = "regression"
    else:
        verdict = "improvement"
    return Comparison(figure, int(xa.size), int(xb.size), ma, mb, ratio, lo, hi, p, significant, beyond, verdict, better)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone).

    Comparing 30 figures at alpha 0.05 would flag one equal figure in most
    runs; Holm keeps the chance of any false flag at alpha without assuming
    the figures are independent (they are not: p95 and max move together).
    NaNs (undecided figures) pass through and are not counted.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    m = len(idx)
    order = sorted(idx, key=lambda i: p_values[i])
    out = list(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        adj = min(1.0, (m - rank) * p_values[i])
        running = max(running, adj)
        out[i] = running
    return out
