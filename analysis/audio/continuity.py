"""Waveform continuity across a position: has the signal after it been
scaled against the signal before it? The level step statistic of dense,
music-like content without a source.

A level statistic (50 ms levels, band lines over a second) compares the
content's level on both sides, and music's own level moves by dB from one
50 ms to the next: on the held-out music-like corpus its clean positions
scatter by 1.5 dB (MAD), and even 6 dB steps did not stand out. The waveform
says more. A linear predictor fitted around the position predicts each
sample after it from the P samples before; for the first P samples after the
position, part of that prediction, q, comes from samples before it. If the
after side is the before side's continuation times g, the residual there is
g e + (g - 1) q: the residual is correlated with q by exactly the step. The
regression of the residual on q gives g - 1 and its t-value; backward (time
reversed) the same holds with 1/g - 1. Music's own events are not of that
form: a note onset adds energy that q does not predict (uncorrelated with q),
a decay is a slow envelope, not a jump. What does mimic it, a drum hit's
attack or its fast decay in the window, also changes the residual's power
against the other side's, and ``veto`` leaves such positions out (scored NaN
at the boundary and at the references alike).

One predictor per position and channel, fitted on a Hann window straddling
the position: a gain step changes the window's level on one side, not the
spectrum's shape, so the same predictor serves both directions. The
statistic is judged like the others: against the same statistic at
non-boundary positions of the same stream (confirm.confirm).

Held-out music-like corpus (seed 4242, 30 s cases, smooth-joined mastering
chain with a +-1 dB drift), order 512: references' |z| at most 1.8-3.7 MADs
once vetoed, 1 dB steps 8.4-8.5 in the cases not vetoed, 3 dB 13.8-23.3.
"""
from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.linalg
import scipy.stats

from .click import levinson
from .confirm import windows_at

ORDER = 512  # 10.7 ms at 48 kHz: the step's evidence is in the first ORDER samples after it
HALF_WINDOW = 4096  # the predictor's fit: 2 x 85 ms straddling the position
# residual power after vs before (gain removed) beyond this either way: an
# event, not a gain. Dev music-like corpus (seed 1234; 60 injected 1 dB
# steps, 5 h clean): injected steps' ratios 0.63-1.29; 1.6 in place of 2.0
# left every step's z where it was and took out half the clean positions
# scoring z >= 6 (2 -> 1 of 29,000) and a quarter of those >= 5 (8 -> 6):
# the events it takes out read 0.5-0.62 (or over 1.6) in a channel and a
# direction. With fewer such references beside them 28 steps instead of 25
# were confirmed; 1.5 began to lose steps
VETO_RATIO = 1.6
# a gain step scales every channel alike, so each channel's own estimate must
# agree with the others' within their standard errors (read off each t-value)
# and AGREE_REL of the step, for model error that grows with it: chi-squared
# with channels - 1 degrees of freedom beyond the p = 0.0027 (3 sigma) point
# is an event in some channels (a hat panned left), not a gain. Dev corpus
# (seed 1234): the 60 injected 1 dB steps read chi 0.0-5.1, but for one at
# z 4.9 (13); the clean positions scoring z >= 4.5, 0.1-3.4
AGREE_REL = 0.1
AGREE_P = 0.0027


def _predictors(r: np.ndarray, order: int) -> np.ndarray:
    """Prediction coefficients per row of autocorrelations: scipy's compiled
    Levinson row by row for the few boundaries of a stream (half the time of
    the batched recursion's 512 Python steps there), the batched recursion
    for the references' hundred-odd rows."""
    if len(r) > 32:
        return levinson(r, order)
    out = np.zeros((len(r), order))
    for i, row in enumerate(r):
        if row[0] > 0:  # a silent window (digital silence) keeps zeros: it is vetoed as silent
            try:
                out[i] = scipy.linalg.solve_toeplitz(row[:order], row[1:order + 1])
            except np.linalg.LinAlgError:  # singular: the batched recursion keeps what it found
                out[i] = levinson(row[None, :], order)[0]
    return out


def _taps_spectrum(a: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """The predictor's spectrum for convolving rows of ``n`` samples with it
    (a[0] = 0: a sample does not predict itself), and the FFT length: once
    per channel, for all six predictions of both directions."""
    nf = scipy.fft.next_fast_len(n + a.shape[1] + 1, real=True)
    return scipy.fft.rfft(np.concatenate([np.zeros((len(a), 1)), a], axis=1), nf, axis=1), nf


def _predicted(seg: np.ndarray, taps: tuple[np.ndarray, int], start: int, length: int) -> np.ndarray:
    """Rows of the prediction sum_k a[k-1] seg[t-k] for t in [start, start+length)."""
    spec, nf = taps
    return scipy.fft.irfft(scipy.fft.rfft(seg, nf, axis=1) * spec, nf, axis=1)[:, start:start + length]


def _direction(seg: np.ndarray, other: np.ndarray, taps: tuple, order: int, length: int):
    """One direction. seg: (M, order + length), the ``order`` samples before
    the position then ``length`` after (time reversed for the backward
    direction); other: (M, order + length) ending at the position, the near
    side's own continuation for the veto. Returns (beta, t-value, residual
    power ratio with the gain taken out: backward the near side is the
    after side, g = 1 / (1 + beta) times the before side, so the same
    (1 + beta)^2 takes the gain out both ways)."""
    before = seg.copy()
    before[:, order:] = 0.0
    q = _predicted(before, taps, order, length)  # the prediction's part made from the before side
    res = seg[:, order:] - _predicted(seg, taps, order, length)
    qq = np.einsum("ml,ml->m", q, q)
    with np.errstate(all="ignore"):
        beta = np.einsum("ml,ml->m", res, q) / qq
        rem = res - beta[:, None] * q
        s2 = np.einsum("ml,ml->m", rem, rem) / (length - 1)
        t = beta * np.sqrt(qq / s2)
        near = other[:, order:] - _predicted(other, taps, order, length)
        s2_near = np.einsum("ml,ml->m", near, near) / length
        ratio = s2 / ((1.0 + beta) ** 2 * s2_near)
    return beta, t, ratio


def continuity_step(x: np.ndarray, centers: np.ndarray, *, order: int = ORDER, length: int | None = None,
                    half_window: int = HALF_WINDOW, veto: float = VETO_RATIO,
                    silence: float = 1e-12, agree: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per centre: (step in dB, t-value), NaN where vetoed, silent or too
    near an end, and with ``agree`` where the channels' steps disagree
    (AGREE_P). x: (frames,) or (frames, channels). The t-value is the sum
    over channels of (forward t - backward t) / sqrt(2): positive for a
    gain up. The step: the forward and backward estimates' mean, in dB."""
    sig = np.asarray(x)
    sig = sig[:, None] if sig.ndim == 1 else sig  # views: only the windows are copied (and made float64)
    length = order if length is None else length
    c = np.asarray(centers, dtype=np.int64)
    reach = max(half_window, order + length)
    ok = (c - reach >= 0) & (c + reach <= len(sig))
    step, tval = np.full(len(c), np.nan), np.full(len(c), np.nan)
    cc = c[ok]
    if not len(cc):
        return step, tval
    t_ch = np.zeros((sig.shape[1], len(cc)))
    db_ch = np.zeros((sig.shape[1], len(cc)))
    bad = np.zeros(len(cc), dtype=bool)
    hann = np.hanning(2 * half_window)
    nf = scipy.fft.next_fast_len(4 * half_window, real=True)
    for ch in range(sig.shape[1]):
        def rows(starts: np.ndarray, n: int, ch: int = ch) -> np.ndarray:
            return windows_at(sig, starts, n)[:, ch].astype(np.float64)

        w = rows(cc - half_window, 2 * half_window) * hann
        spec = scipy.fft.rfft(w, nf, axis=1)
        r = scipy.fft.irfft(spec.real ** 2 + spec.imag ** 2, nf, axis=1)[:, : order + 1]
        silent = r[:, 0] <= silence * 2 * half_window
        r[:, 0] *= 1.0 + 1e-9  # a whisker of white noise: a pure tone's Toeplitz system stays solvable
        taps = _taps_spectrum(_predictors(r, order), order + length)
        fwd = rows(cc - order, order + length)
        fwd_near = rows(cc - order - length, order + length)
        bwd = rows(cc - length, order + length)[:, ::-1]
        bwd_near = rows(cc, order + length)[:, ::-1]
        bf, tf, rf = _direction(fwd, fwd_near, taps, order, length)
        bb, tb, rb = _direction(np.ascontiguousarray(bwd), np.ascontiguousarray(bwd_near), taps, order, length)
        with np.errstate(all="ignore"):
            t_ch[ch] = (tf - tb) / np.sqrt(2.0)
            db_ch[ch] = 0.5 * (20 * np.log10(np.abs(1.0 + bf)) - 20 * np.log10(np.abs(1.0 + bb)))
            bad |= silent | ~np.isfinite(tf + tb)
            if veto:
                bad |= (rf > veto) | (rf < 1 / veto) | (rb > veto) | (rb < 1 / veto)
    mean_db = db_ch.mean(0)
    if agree and sig.shape[1] > 1:
        bad |= channel_chi(db_ch, t_ch, mean_db) > scipy.stats.chi2.isf(AGREE_P, sig.shape[1] - 1)
    step[ok] = np.where(bad, np.nan, mean_db)
    tval[ok] = np.where(bad, np.nan, t_ch.sum(0))
    return step, tval


def channel_chi(db_ch: np.ndarray, t_ch: np.ndarray, mean_db: np.ndarray) -> np.ndarray:
    """Chi-squared of the channels' steps (channels, positions) about their
    weighted mean; each one's variance (step / t)^2 plus (AGREE_REL x step)^2."""
    with np.errstate(all="ignore"):
        w = 1.0 / ((db_ch / t_ch) ** 2 + (AGREE_REL * mean_db) ** 2)
        w = np.where(np.isfinite(w), w, 0.0)  # a channel with no estimate (t = 0) carries no weight
        centre = (w * db_ch).sum(0) / w.sum(0)
        return np.nan_to_num((w * (db_ch - centre) ** 2).sum(0), nan=0.0)
