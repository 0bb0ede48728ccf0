"""A rest between notes is no crossfade dip. Without a source the dip
detector sees the level trace only, and a note decaying to near silence
before a boundary, then the next note's onset, reads as a dip of 10 dB or
more (a held-out music-like corpus: one in 10 h). A crossfade of two
renderings cannot dip that deep (DEEPEST_CROSSFADE_DB) unless they cancel,
and a crossfade's level is smooth where a rest ends in an onset (ONSET_DB):
both together mark the rest. The rule must stay that narrow: a linear
crossfade on the same content, and a deep but smooth dip (two renderings in
opposite polarity crossfaded), are still found at their depth."""
from __future__ import annotations

import numpy as np
import pytest

import analysis.audio.crossfade as crossfade
from analysis import signals
from analysis.audio.crossfade import detect_crossfade_dips

SR = 44100
B = np.array([10 * SR, 20 * SR, 30 * SR, 40 * SR])


def with_rest(seed: int, at: int) -> np.ndarray:
    """Pink noise that decays by 30 dB over the 300 ms before ``at`` and
    comes back at full level 100 ms after it (the next note's onset)."""
    x = signals.pink_noise_stereo(50.0, SR, seed=seed)
    env = np.ones(len(x))
    k = np.arange(int(0.4 * SR))
    env[at - int(0.3 * SR): at + int(0.1 * SR)] = 10 ** (-30 * np.minimum(k / (0.3 * SR), 1) / 20)
    return (x * env[:, None]).astype(np.float32)


def crossfaded(x: np.ndarray, other: np.ndarray, at: int, seconds: float = 0.5) -> np.ndarray:
    L = int(seconds * SR)
    lo = at - L // 2
    fade = np.linspace(1, 0, L, dtype=np.float32)[:, None]
    y = x.copy()
    y[lo:lo + L] = x[lo:lo + L] * fade + other[lo:lo + L] * (1 - fade)
    y[lo + L:] = other[lo + L:]
    return y


@pytest.mark.parametrize("seed", [3, 4])
def test_a_rest_ended_by_an_onset_is_no_dip(seed, monkeypatch):
    x = with_rest(seed, int(B[1]))
    assert detect_crossfade_dips(x, SR, B) == []
    # the rule is what refuses it: without the onset test it is a confirmed dip
    monkeypatch.setattr(crossfade, "ONSET_DB", np.inf)
    found = detect_crossfade_dips(x, SR, B)
    assert [d.boundary_index for d in found] == [1] and found[0].magnitude > crossfade.DEEPEST_CROSSFADE_DB


@pytest.mark.parametrize("seed", [3, 4])
def test_crossfades_next_to_the_rest_are_still_found(seed):
    x = with_rest(seed, int(B[1]))
    # a linear crossfade onto an uncorrelated rendering: ~3 dB
    other = signals.pink_noise_stereo(50.0, SR, seed=seed + 100)
    found = detect_crossfade_dips(crossfaded(x, other, int(B[2])), SR, B)
    assert [d.boundary_index for d in found] == [2]
    assert 2.0 < found[0].magnitude < 4.0
    # onto the same rendering in opposite polarity: deep, and smooth
    found = detect_crossfade_dips(crossfaded(x, -x, int(B[3])), SR, B)
    assert [d.boundary_index for d in found] == [3]
    assert found[0].magnitude > 10.0
