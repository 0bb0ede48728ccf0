"""The wide searches (continuity's +-8 s locate, the position trace's
whole-source index) run their FFTs in float32 for speed. Known answers: they
place a window where the float64 search does, on every content type, say
"ambiguous" where it does (a sine), and never place a window in a source's
digital silence, where float32 rounding over a near-zero energy would read
as a perfect match. The position trace reads a bit-exact window's lag as a
whole frame with correlation 1."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from analysis import signals
from analysis.audio.position import _SourceIndex, trace_positions
from analysis.continuity import AMBIGUITY, MIN_CORR, locate

SR = 44100


def _locate_float64(window, source, expected, search):
    """continuity.locate as it was before float32: scipy's float64 correlate."""
    n = window.size
    lo, hi = max(0, expected - search), min(source.size, expected + search + n)
    seg = source[lo:hi]
    num = sps.correlate(seg, window, mode="valid", method="fft")
    cs = np.concatenate([[0.0], np.cumsum(seg * seg)])
    corr = num / np.sqrt(np.maximum(cs[n:] - cs[:-n], 1e-20) * float(np.dot(window, window)))
    best = int(np.argmax(corr))
    if corr[best] < MIN_CORR:
        return None
    masked = corr.copy()
    masked[max(0, best - 64): best + 64] = -np.inf
    if float(masked.max()) >= AMBIGUITY * corr[best]:
        return None
    return lo + best, float(corr[best])


def _track(name):
    x = signals.TEST_TRACKS[name][0](20.0, SR)
    return (x[:, 0] if x.ndim == 2 else x).astype(np.float64)


@pytest.mark.parametrize("name", ["pink", "sweep", "timecode", "sine"])
def test_continuity_locate_agrees_with_the_float64_search(name):
    src = _track(name)
    rng = np.random.default_rng(5)
    # a processed capture: gain and a little noise, so the exact fast path is not taken
    for at in (44100, 300000, 600000):
        win = 0.7 * src[at:at + 8192] + 1e-4 * rng.standard_normal(8192)
        got = locate(win, src, at + 1000, int(8 * SR))
        want = _locate_float64(win, src, at + 1000, int(8 * SR))
        if want is None:
            assert got is None, (name, at)
        else:
            assert got is not None and got[0] == want[0] == at and got[1] == pytest.approx(want[1], abs=1e-4)
    if name == "sine":
        assert got is None  # a sine cannot be placed


def test_neither_search_places_a_window_in_digital_silence():
    rng = np.random.default_rng(9)
    src = np.concatenate([np.zeros(5 * SR), rng.standard_normal(10 * SR)])
    win = 0.5 * src[8 * SR: 8 * SR + 8192] + 1e-3 * rng.standard_normal(8192)
    assert locate(win, src, 8 * SR - 20000, int(8 * SR))[0] == 8 * SR
    index = _SourceIndex(src.astype(np.float32), 3 * SR)
    hit = index.search(src[9 * SR: 10 * SR] * 0.3, ambiguity=0.97, guard=SR // 2)
    assert hit is not None and hit[0] == 9 * SR and hit[1] > 0.999


def test_the_whole_source_index_calls_a_sine_ambiguous_and_places_noise():
    sine = _track("sine").astype(np.float32)
    index = _SourceIndex(sine, 3 * SR)
    assert index.search(sine[SR: 2 * SR].astype(np.float64), ambiguity=0.97, guard=SR // 2) is None
    pink = _track("pink").astype(np.float32)
    index = _SourceIndex(pink, 3 * SR)
    assert index.search(pink[7 * SR: 8 * SR].astype(np.float64), ambiguity=0.97, guard=SR // 2)[0] == 7 * SR


def test_a_bit_exact_capture_traces_at_whole_frames_with_correlation_one():
    src = _track("pink").astype(np.float32)
    start = 123457  # a seek to a frame, not to a chunk start
    cap = src[start: start + 10 * SR]
    tr = trace_positions(cap, src, SR, expected_lag=start - 0.4)  # a request rounded off the frame
    known = np.isfinite(tr.lags)
    assert known.sum() >= 35
    assert np.all(tr.lags[known] == start) and np.all(tr.corr[known] == 1.0)
    assert tr.anchored


def test_searches_sharing_a_tracks_blocks_answer_as_the_float64_search_at_every_edge():
    """One SourceBlocks serves every search of a run: windows at the track's
    first and last frames, on and beside block edges (where a lag's
    correlation must come whole from one block), searched off their place
    and clipped by the track's ends, answer as the float64 search does."""
    from analysis.continuity import SourceBlocks

    src = _track("pink")
    blocks = SourceBlocks(src)
    rng = np.random.default_rng(11)
    hop = blocks.hop
    spots = [0, 1, hop - 1, hop, hop + 1, 3 * hop - 8192, 3 * hop - 8191, len(src) - 8192, len(src) - 8193]
    for at in spots + [int(p) for p in rng.integers(0, len(src) - 8192, 12)]:
        win = 0.6 * src[at:at + 8192] + 1e-4 * rng.standard_normal(8192)
        for expected in (at, at + 5000, at - 70000):
            got = locate(win, src, expected, int(8 * SR), blocks)
            want = _locate_float64(win, src, expected, int(8 * SR))
            assert want is not None and want[0] == at
            assert got is not None and got[0] == at and got[1] == pytest.approx(want[1], abs=1e-4), (at, expected)
    assert len(blocks._spectra) == -(-len(src) // hop)  # every block made once, none twice


def test_block_correlation_and_energy_at_every_lag_across_block_edges():
    from analysis.continuity import SourceBlocks

    src = _track("pink")
    blocks = SourceBlocks(src)
    win = np.random.default_rng(12).standard_normal(8192)
    for lo in (0, blocks.hop - 40, 2 * blocks.hop - 8192 - 40, len(src) - 8192 - 79):
        num, energy = blocks.search(win, lo, 80)
        want = np.array([np.dot(win, src[p:p + 8192]) for p in range(lo, lo + 80)])
        want_e = np.array([np.dot(src[p:p + 8192], src[p:p + 8192]) for p in range(lo, lo + 80)])
        scale = np.sqrt(np.dot(win, win) * want_e)
        np.testing.assert_allclose(num / scale, want / scale, atol=2e-6)
        np.testing.assert_allclose(energy, want_e, rtol=1e-9)


def test_whole_source_block_correlation_equals_one_fft_pair_of_the_track():
    """The position index's blocks (three 3 s windows long) give every lag of
    a whole-track search as one FFT pair of the whole track does."""
    from analysis.audio.alignment import BlockSpectra, valid_correlation

    src = _track("pink")
    seg = src[5 * SR: 8 * SR] * 0.5
    blocks = BlockSpectra(src, 3 * SR)
    assert -(-len(src) // blocks.hop) > 2  # several blocks, so their joins are crossed
    got = blocks.correlation(seg, 0, len(src) - len(seg) + 1)
    want = valid_correlation(src, seg)
    np.testing.assert_allclose(got, want, atol=2e-6 * float(np.abs(want).max()))
    assert int(np.argmax(got)) == 5 * SR
