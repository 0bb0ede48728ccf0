"""Known answers for the client-side measurements."""
from __future__ import annotations

import numpy as np

from analysis.client import rolling_max_mean, simulate_playback


def test_steady_delivery_faster_than_real_time_never_underruns():
    t = np.arange(10) * 0.1  # 1 s of audio every 0.1 s
    _, levels, n, total, first = simulate_playback(t, np.ones(10))
    assert n == 0 and total == 0 and first is None
    assert levels[-1] > 9


def test_late_frame_is_one_underrun_of_the_right_length():
    # 1 s of audio at t=0, the next second arrives at t=1.75: 0.75 s silent from t=1.0
    t = np.array([0.0, 1.75, 1.8])
    _, _, n, total, first = simulate_playback(t, np.array([1.0, 1.0, 1.0]))
    assert n == 1
    assert abs(total - 0.75) < 1e-9
    assert abs(first - 1.0) < 1e-9


def test_rolling_max_mean_finds_sustained_peak_not_spike():
    t = np.arange(0, 20, 0.25)
    v = np.full(t.size, 20.0)
    v[10] = 100.0  # a single spike
    assert rolling_max_mean(t, v, 2.0) < 40
    v[40:52] = 95.0  # 3 s sustained
    assert rolling_max_mean(t, v, 2.0) >= 90
