"""The fast paths of the audio detectors give what the plain computation
gives: each is checked against the textbook version it replaced (scipy's
Toeplitz solver, scipy's correlate, per-split least squares, an explicit
loop), on signals where a wrong index or a sign would show."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from scipy.linalg import solve_toeplitz
from scipy.signal import correlate, sosfilt

from analysis import signals
from analysis.audio.alignment import _step_db, valid_correlation, step_improvement
from analysis.audio.click import levinson, lpc_residual_metric, second_difference_metric
from analysis.audio.confirm import windows_at
from analysis.audio.crossfade import crossfade_dip_metric
from analysis.audio.level import gain_step_db
from analysis.audio.spectral import BAND_EDGES_HZ, band_energies_db
from tests.audio.synth import _shelf_sos

SR = 44100


def test_levinson_solves_the_yule_walker_equations_like_scipy():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((40, 1024)) * np.hanning(1024)
    w[0] = np.sin(np.arange(1024) * 0.3) * np.hanning(1024)  # near-singular: a pure tone
    r = np.stack([np.einsum("ij,ij->i", w[:, : 1024 - k], w[:, k:]) for k in range(13)], axis=1)
    r[:, 0] *= 1 + 1e-9
    got = levinson(r, 12)
    want = np.stack([solve_toeplitz(row[:12], row[1:13]) for row in r])
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-9, atol=1e-12)
    # the tone's system is ill-conditioned (cond ~1e9): both solvers agree to
    # ~1e-5 in the coefficients, and each solves the equations it was given
    toeplitz = r[0, np.abs(np.arange(12)[:, None] - np.arange(12)[None, :])]
    np.testing.assert_allclose(toeplitz @ got[0], r[0, 1:13], rtol=1e-7, atol=1e-9 * r[0, 0])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-6)
    silent = np.zeros((2, 13))
    assert not levinson(silent, 12).any()


def _lpc_reference(x1: np.ndarray, c: int, half: int, center_half: int, order: int = 12) -> tuple[float, float, int]:
    """The per-window computation written out: FFT autocorrelation, scipy's
    Toeplitz solver, an explicit prediction loop."""
    w = x1[c - half: c + half].astype(np.float64)
    n = len(w)
    spec = np.fft.rfft(w * np.hanning(n), 2 * n)
    r = np.fft.irfft(np.abs(spec) ** 2, 2 * n)[: order + 1]
    r[0] *= 1 + 1e-9
    a = solve_toeplitz(r[:order], r[1: order + 1])
    e = np.abs(np.array([w[j] - sum(a[k - 1] * w[j - k] for k in range(1, order + 1)) for j in range(order, n)]))
    mid = half - order
    lo, hi = mid - center_half, mid + center_half
    peak = e[lo:hi].max()
    rms = np.sqrt(np.mean(np.concatenate([e[:lo], e[hi:]]) ** 2))
    return 20 * np.log10(peak / rms), peak, c - mid + lo + int(e[lo:hi].argmax())


def test_lpc_metric_matches_the_written_out_computation_and_picks_the_clicked_channel():
    x = np.stack([signals.sine(duration_s=1.0, sr=SR)[:, 0], 0.5 * signals.log_sweep(duration_s=1.0, sr=SR)[:, 0]],
                 axis=1).astype(np.float32)
    x[22050, 1] += 1e-3  # a -60 dBFS click on the right channel only
    centers = np.array([5000, 22060, 30000])
    m, a, t = lpc_residual_metric(x, centers, half_window=256, center_half=66)
    for i, c in enumerate(centers):
        per_channel = [_lpc_reference(x[:, ch], int(c), 256, 66) for ch in range(2)]
        want = max(per_channel, key=lambda v: v[0])
        assert m[i] == pytest.approx(want[0], abs=1e-6)
        assert a[i] == pytest.approx(want[1], rel=1e-6)
        assert t[i] == want[2]
    # the click, on its own channel; the residual peaks at it or one frame on
    # (the predictor then carries the impulse with weight up to ~2 on a tone)
    assert abs(t[1] - 22050) <= 1 and m[1] > m[0] + 30


def test_second_difference_and_edges_behave_like_per_window_code():
    rng = np.random.default_rng(2)
    x = (0.1 * rng.standard_normal((20000, 2))).astype(np.float32)
    x[:3000] = 0.0  # silent windows give no metric
    centers = np.array([10, 1000, 10000, 19995])  # the first and last leave the signal
    m, a, t = second_difference_metric(x, centers, half_window=256, center_half=32)
    assert np.isnan(m[0]) and np.isnan(m[1]) and np.isnan(m[3])
    w = x[10000 - 257: 10000 + 257].astype(np.float64)
    d2 = np.abs(w[2:] - 2 * w[1:-1] + w[:-2])
    best = []
    for ch in range(2):
        center = d2[256 - 32: 256 + 32, ch]
        rest = np.concatenate([d2[: 256 - 32, ch], d2[256 + 32:, ch]])
        best.append(20 * np.log10(center.max() / np.sqrt(np.mean(rest ** 2))))
    assert m[2] == pytest.approx(max(best), abs=1e-9)


def test_valid_correlation_equals_scipy_correlate():
    rng = np.random.default_rng(3)
    for n_ref, n_seg in ((4096, 2048), (88200, 44100), (5001, 17), (300, 300)):
        ref, seg = rng.standard_normal(n_ref), rng.standard_normal(n_seg)
        np.testing.assert_allclose(valid_correlation(ref, seg), correlate(ref, seg, "valid"), atol=1e-9)


def _step_reference(x, s, k, l1, l2, half, taps=9):
    """lstsq for the two single-lag fits and the split fit, written out."""
    h = taps // 2
    y = x[k - half: k + half].astype(np.float64)

    def rows(lag, a, b):
        return np.stack([s[j + lag - h: j + lag + h + 1] for j in range(a, b)]).astype(np.float64)

    def err(m, yy):
        coef, *_ = np.linalg.lstsq(m, yy, rcond=None)
        return float(np.sum((yy - m @ coef) ** 2))

    one = min(err(rows(l1, k - half, k + half), y), err(rows(l2, k - half, k + half), y))
    split = err(np.concatenate([rows(l1, k - half, k), rows(l2, k, k + half)]), y)
    return 10 * np.log10(one / split)


def test_step_scores_equal_separate_least_squares_fits_for_every_pair_and_split():
    src = signals.pink_noise_stereo(duration_s=2.0, sr=SR)[:, 0].astype(np.float32)
    eq = sosfilt(_shelf_sos(3.0, SR, 2000.0), src).astype(np.float32)
    k = 40000
    x = np.concatenate([eq[:k], eq[k + 2:]])  # 2 samples dropped at k: lag 0 before, 2 after
    # noise 40 dB down keeps every fit's error finite, so the dB figures compare
    x = x + (0.01 * np.random.default_rng(7).standard_normal(len(x))).astype(np.float32) * float(np.std(eq))
    pairs = [(0, 1), (0, 2), (0, -3), (0, 8)]
    d = _step_db(x, eq, k, pairs, half=256, search=2)
    assert d.shape == (4, 5)
    for i, (l1, l2) in enumerate(pairs):
        for j, kk in enumerate(range(k - 2, k + 3)):
            assert d[i, j] == pytest.approx(_step_reference(x, eq, kk, l1, l2, 256), abs=0.05)
    assert np.unravel_index(np.argmax(d), d.shape) == (1, 2)  # the right size at the right frame
    db, at = step_improvement(x, eq, k + 1, 0, 2, half=256, search=4, with_frame=True)
    assert at == k and db > 20
    assert _step_db(x, eq, 100, pairs, half=256, search=4) is None  # too near the start


def test_gain_step_normal_equations_match_a_plain_least_squares_fit():
    rng = np.random.default_rng(4)
    s = (0.1 * rng.standard_normal(SR)).astype(np.float32)
    x = sosfilt(_shelf_sos(2.0, SR, 3000.0), s).astype(np.float32)
    x[20000:] *= np.float32(10 ** (0.7 / 20))
    db = gain_step_db(x, s, np.array([20000, 30000]), SR)
    assert db[0] == pytest.approx(0.7, abs=0.02)
    assert abs(db[1]) < 0.02


def test_band_energies_match_a_plain_periodogram():
    rng = np.random.default_rng(5)
    frames = rng.standard_normal((6, 4096)).astype(np.float32)
    spec = np.abs(np.fft.rfft(frames.astype(np.float64) * np.hanning(4096), axis=1)) ** 2
    f = np.fft.rfftfreq(4096, 1 / SR)
    for b, (lo, hi) in enumerate(zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])):
        want = 10 * np.log10(spec[:, (f >= lo) & (f < hi)].sum(axis=1) + 1e-20)
        np.testing.assert_allclose(band_energies_db(frames, SR)[:, b], want, atol=1e-3)
    low_rate = band_energies_db(frames[:, :2048], 8000)  # 4-8 kHz holds only the Nyquist bin; above, nothing
    assert (low_rate[:, -2:] < -190).all() and (low_rate[:, :-2] > -190).all()


def test_crossfade_metric_tries_every_length_and_offset_like_a_loop():
    rng = np.random.default_rng(6)
    trace = rng.normal(-20, 0.3, 3000)
    trace[1500 - 25: 1500 + 25] -= 3.0  # a 3 dB dip 50 frames wide at 1500
    trace[200:230] = -200  # silence: no metric near it
    centers = np.array([1500, 1450, 210, 2990, 800])
    m, c, L = crossfade_dip_metric(trace, centers, lengths=(25, 50, 100))
    assert np.isnan(m[2]) and np.isnan(m[3])
    assert m[0] == pytest.approx(3.0, abs=0.3) and c[0] == 1500
    best = max(((0.5 * (trace[cc - LL: cc - LL // 2].mean() + trace[cc + LL // 2 + 1: cc + LL + 1].mean())
                 - trace[cc - LL // 6: cc + LL // 6 + 1].mean(), cc, LL)
                for LL in (25, 50, 100) for cc in 800 + np.arange(-2, 3) * LL // 4), key=lambda v: v[0])
    assert (m[4], c[4], L[4]) == pytest.approx(best)


def test_windows_at_copies_rows_of_one_and_two_channel_signals():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    w = windows_at(x, np.array([0, 5, 15]), 5)
    assert w.shape == (3, 2, 5)
    np.testing.assert_array_equal(w[1, 0], x[5:10, 0])
    np.testing.assert_array_equal(w[2, 1], x[15:20, 1])
    np.testing.assert_array_equal(windows_at(x[:, 0], np.array([3]), 4)[0], x[3:7, 0])
    assert scipy.fft.next_fast_len(4096, real=True) == 4096  # the correlation's FFT needs no padding


def test_echo_match_search_equals_a_loop_over_every_lag():
    """signature.echo_match_db's batched FFT search against the written-out
    difference energy at every lag, on noise with a planted echo."""
    from analysis.audio.signature import echo_match_db

    rng = np.random.default_rng(7)
    x = rng.standard_normal(20000).astype(np.float32)
    x[12000:12064] = x[12000 - 1234:12000 - 1234 + 64] + 0.01 * x[12000:12064]  # a 1234-frame echo at 12000
    centers = np.array([12000, 9000, 15500])
    m, lags = echo_match_db(x, centers, lag_min=100, lag_max=3000, head=64)
    for c, mi, li in zip(centers, m, lags):
        h = x[c:c + 64].astype(np.float64)
        err = np.array([np.sum((h - x[c - L:c - L + 64]) ** 2) for L in range(100, 3001)])
        j = int(np.argmin(err))
        assert li == 100 + j
        assert mi == pytest.approx(10 * np.log10(np.sum(h * h) / (err[j] + 1e-9 * np.sum(h * h))), abs=1e-6)
    assert lags[0] == 1234 and m[0] > 35


def test_what_is_derived_from_a_source_is_kept_only_while_it_cannot_change():
    """kept.derived keeps a frozen source's mid signal and spectrum for
    the run's next stream; a writable array (a test's or a user's capture,
    which may be edited between calls) is derived afresh every time."""
    from analysis.audio.alignment import _mono
    from analysis.audio.kept import frozen

    x = np.ones((1000, 2), dtype=np.float32)
    first = _mono(x)
    x[10] = 5.0  # edited in place: the next mid signal must see it
    assert _mono(x)[10] == 10.0 and first[10] == 2.0
    src = frozen(x)
    assert not src.flags.writeable and _mono(src) is _mono(src)
    view = frozen(np.ones((1000, 2), dtype=np.float32)[100:])
    assert view.base is None  # a view is copied: its base could still be written through
    with pytest.raises(ValueError):
        src[0] = 1.0


def test_a_peak_at_the_expected_lag_gives_what_the_full_search_gives(monkeypatch):
    """estimate_lag's three-dot-product answer at the expected lag against
    its full FFT search, on content where the two could part: noise, a tone
    (a peak every period), a sweep, lowpassed noise (a broad peak), noise
    with an echo 37 frames on (a lower peak beside the true one), gain, added
    noise, and an expected lag a few frames, a period or the echo off."""
    from analysis.audio import alignment

    rng = np.random.default_rng(7)
    n = 60000
    t = np.arange(n) / SR
    contents = [rng.standard_normal(n) * 0.1, 0.3 * np.sin(2 * np.pi * 440 * t),
                0.3 * np.sin(2 * np.pi * (50 + 2000 * t) * t), np.convolve(rng.standard_normal(n), np.ones(30) / 30, "same")]
    noise = rng.standard_normal(n) * 0.1
    contents.append(noise + 0.8 * np.roll(noise, 37))
    fast = alignment._peak_at_expected
    taken = 0
    for i in range(500):
        s = contents[i % 5]
        lag = int(rng.integers(-300, 300))
        x = (np.roll(s, -lag) * rng.uniform(0.5, 1.2) + rng.standard_normal(n) * rng.choice([0, 1e-4, 1e-2, 0.05]))
        x = x.astype(np.float32)
        at, expected = int(rng.integers(3000, 40000)), lag + int(rng.choice([0, 0, 1, -2, 100, 37, -37]))
        window, shift = int(rng.choice([4096, 8820, 2000])), int(rng.choice([2048, 1323, 64, 1]))
        calls = []
        monkeypatch.setattr(alignment, "_peak_at_expected", lambda *a: calls.append(fast(*a)) or calls[-1])
        got = alignment.estimate_lag(x, s, at, expected, window=window, max_shift=shift)
        monkeypatch.setattr(alignment, "_peak_at_expected", lambda *a: None)
        want = alignment.estimate_lag(x, s, at, expected, window=window, max_shift=shift)
        taken += bool(calls) and calls[-1] is not None  # an early return (no window) asks no fast path
        assert (got is None) == (want is None)
        if got is not None:
            np.testing.assert_allclose(got, want, atol=1e-6)
    assert 100 < taken < 400  # both paths were exercised
