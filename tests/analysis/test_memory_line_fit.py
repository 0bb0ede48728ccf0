"""The leak and per-stream slopes' line fit (analysis/memory.py), written in
numpy to keep scipy.stats out of every run's analysis, is scipy's
linregress with a t interval."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.memory import line_fit


@pytest.mark.parametrize("n, noise", [(3, 1.0), (8, 0.0), (40, 5.0), (2000, 50.0)])
def test_line_fit_is_linregress_with_a_t_interval(n, noise):
    rng = np.random.default_rng(n)
    x = np.sort(rng.integers(0, 300, n)).astype(float)
    x[-1] = x[0] + 300  # never a flat x
    y = 0.7 * x + noise * rng.standard_normal(n)
    got = line_fit(x, y)
    r = stats.linregress(x, y)
    half = stats.t.ppf(0.975, max(1, n - 2)) * r.stderr
    assert got["slope"] == pytest.approx(r.slope, rel=1e-10, abs=1e-12)
    assert got["ci_low"] == pytest.approx(r.slope - half, rel=1e-9, abs=1e-9)
    assert got["ci_high"] == pytest.approx(r.slope + half, rel=1e-9, abs=1e-9)
    assert got["r2"] == pytest.approx(r.rvalue ** 2, rel=1e-10, abs=1e-12)


def test_a_flat_y_has_slope_zero_and_no_interval():
    got = line_fit(np.arange(10.0), np.full(10, 4.0))
    assert (got["slope"], got["ci_low"], got["ci_high"], got["r2"]) == (0.0, 0.0, 0.0, 0.0)
