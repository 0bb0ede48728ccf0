"""Without a source, a level step must hold: a note onset just after a
boundary (10 dB over 50 ms, still 5 dB over 200 ms, gone within a second) is
content, not a step; the same short-term change that holds for the chunk is.
The music-like held-out corpus had 5 such false steps in 40 min."""
from __future__ import annotations

import numpy as np

from analysis.audio.level import detect_level_steps, persistent_step_db

SR = 44100


def _steady(seconds: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * SR)) / SR
    x = 0.1 * np.sin(2 * np.pi * 440 * t)
    return np.stack([x, x], axis=1).astype(np.float32), np.array([8, 15, 22], dtype=np.int64) * SR


def test_an_onset_at_a_boundary_is_not_a_step():
    x, b = _steady()
    t = np.arange(SR) / SR
    burst = 0.3 * np.sin(2 * np.pi * 660 * t) * np.exp(-t / 0.15)  # a struck note, decaying
    x[b[1]:b[1] + SR] += burst[:, None].astype(np.float32)
    assert abs(persistent_step_db(x, b, SR)[1]) < 2.0  # the medians see it go
    assert detect_level_steps(x, SR, b) == []


def test_the_same_change_that_holds_is_a_step():
    x, b = _steady()
    x[b[1]:] *= np.float32(10 ** (4.0 / 20))
    held = persistent_step_db(x, b, SR)
    assert abs(held[1] - 4.0) < 0.05 and np.all(np.abs(held[[0, 2]]) < 0.05)
    found = detect_level_steps(x, SR, b)
    assert [d.boundary_index for d in found] == [1] and abs(found[0].magnitude - 4.0) < 0.1
