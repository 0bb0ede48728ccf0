"""Music that starts on a boundary after digital silence, in a capture
processed by a zero-phase filter (as a mastering chain's look-ahead does):
the filter rings the onset back into the silence, -60 dB before it. Auralis's
enhanced path does this to the silence-lead track at 25 s. With the source:

* the alignment must not take that pre-ringing's best match (the onset a few
  hundred frames on) for the stream's lag: the first checkpoint did, and the
  whole stream was compared with a source 23 ms off;
* a side where the source is silent has no gain and no spectral shape to
  compare: the capture's pre-ringing over the source's silence read as a
  6 dB level step and a 6.7 dB spectral step.
The same stream with a real gain step at another boundary still has it."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from analysis import signals
from analysis.audio import analyse_capture

SR = 44100
B = np.array([15, 25, 35]) * SR  # the silence-lead track's music starts at 25 s, on the second boundary


@pytest.fixture(scope="module")
def source():
    return signals.silence_then_music(duration_s=45.0, sr=SR).astype(np.float32)


# zero-phase filters as a chain might apply them; each reads a false defect at
# 25 s without one of the three guards: hp40 (4th order) and bp30 a -8.9 and
# -11.5 dB level step (the source's silent side), bp100 a 21 dB spectral step
# (the same) and, aligned by its pre-ringing, a 412-frame lag
FILTERS = {
    "hp40": butter(4, 40.0, "highpass", fs=SR, output="sos"),
    "bp30": butter(2, [30.0, 6000.0], "bandpass", fs=SR, output="sos"),
    "bp100": butter(2, [100.0, 6000.0], "bandpass", fs=SR, output="sos"),
}


def zero_phase(src: np.ndarray, name: str, gain: float = 1.8) -> np.ndarray:
    return (gain * sosfiltfilt(FILTERS[name], src, axis=0)).astype(np.float32)


@pytest.mark.parametrize("name", FILTERS)
def test_the_silence_before_the_onset_really_rings(source, name):
    before = zero_phase(source, name)[B[1] - 2205: B[1]]
    assert np.all(source[: B[1]] == 0)
    assert -70 < 10 * np.log10(np.mean(before.astype(float) ** 2)) < -50  # Auralis's read -60 dB


@pytest.fixture(scope="module")
def analysed(source):
    """Each filter's capture analysed once, for the two tests that read it."""
    return {name: analyse_capture(zero_phase(source, name), SR, B, source=source, enhanced=False) for name in FILTERS}


@pytest.mark.parametrize("name", FILTERS)
def test_the_stream_aligns_at_its_true_lag(analysed, name):
    al = analysed[name].alignment
    assert al.start_lag == 0 and al.segments == [(0, 0)], al


@pytest.mark.parametrize("name", FILTERS)
def test_no_defect_is_read_from_the_silent_side(analysed, name):
    assert analysed[name].defects == [], analysed[name].defects


def test_a_real_step_at_the_next_boundary_is_still_found(source):
    # a filter the source-relative models fit (the band-pass ones they do not: no step is confirmed there)
    x = (1.8 * sosfiltfilt(butter(2, 8000.0, fs=SR, output="sos"), source, axis=0)).astype(np.float32)
    x[B[2]:] *= np.float32(10 ** (1.0 / 20))
    res = analyse_capture(x, SR, B, source=source, enhanced=False)
    steps = [d for d in res.defects if d.kind == "level_step"]
    assert len(steps) == 1 and steps[0].time_s == 35.0 and abs(steps[0].magnitude - 1.0) < 0.1, res.defects
