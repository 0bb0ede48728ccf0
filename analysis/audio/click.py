"""Clicks: waveform discontinuities at chunk boundaries.

Two metrics, both scored against non-boundary positions of the same stream:

* LPC residual (in the manner of Essentia's DiscontinuityDetector): a linear
  predictor fitted to the window around each position predicts every sample
  from the previous ``order``; a discontinuity is what it cannot predict. On
  tonal content (sine, sweep) the residual floor is ~90 dB down, so a click
  at -60 dBFS stands out by tens of dB.
* second-difference energy: the peak of |x[n+1] - 2x[n] + x[n-1]| near the
  position over its RMS in the surrounding window; cheaper, and what a
  butt-joined chunk with a different gain or EQ produces.

magnitude is the click's amplitude as the residual sees it (dBFS): for an
impulse added to the signal that is the impulse's own amplitude.
"""
from __future__ import annotations

import numpy as np

from .confirm import confirm, reference_positions, windows_at
from .defect import AudioDefect

_TINY = 1e-20
# the second difference's level around a peak over its window's floor above
# which the peak is part of a burst of content (see detect_clicks and
# _burst_db). 4.0 let three drum attacks 52-61 frames before a boundary of
# clean music-like content through as clicks in 10 h (they read 3.6-4.0);
# injected 20 dB clicks read at most 0.8 on that content and 2.6 on a sweep.
# The after side alone (dev seed 1234, 80 injected clicks per content type):
# at most 3.0 on periodic content, 2.35 sweep, 1.8 noise, 2.5 music-like
# (one click inside a burst read 7.9, already over 3.25 both sides)
BURST_DB = 3.25


def levinson(r: np.ndarray, order: int) -> np.ndarray:
    """Prediction coefficients a (rows, order) with x[n] ~ sum_k a[k-1] x[n-k],
    from autocorrelations r (rows, >= order+1): the Yule-Walker equations
    solved by the Levinson-Durbin recursion for every row at once (what
    scipy.linalg.solve_toeplitz does for one row; a Python call per window
    cost more than the arithmetic). Rows whose prediction error vanishes
    keep the coefficients found so far."""
    a = np.zeros((len(r), order))
    err = r[:, 0].copy()
    for i in range(order):
        acc = r[:, i + 1] - np.einsum("rj,rj->r", a[:, :i], r[:, i:0:-1]) if i else r[:, 1].copy()
        live = err > _TINY
        k = np.where(live, acc / np.where(live, err, 1.0), 0.0)
        a[:, :i] -= k[:, None] * a[:, i - 1::-1] if i else 0.0
        a[:, i] = k
        err = np.where(live, err * (1.0 - k * k), err)
    return a


def _lpc_rows(w: np.ndarray, *, order: int, half_window: int, center_half: int,
              white_noise_db: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per window row: (metric dB, residual peak, peak offset in the window, silent)."""
    w = w.astype(np.float64)
    n = w.shape[1]
    tapered = w * np.hanning(n)
    # the first order+1 lags of the (linear) autocorrelation, directly: 13 dot
    # products per row are cheaper than an FFT of twice the window
    r = np.stack([np.einsum("ij,ij->i", tapered[:, : n - k], tapered[:, k:]) for k in range(order + 1)], axis=1)
    r[:, 0] *= 1 + 10 ** (white_noise_db / 10)
    coeffs = levinson(r, order)
    # pred[j] = sum_k a[k-1] w[j+order-k]: the previous ``order`` samples,
    # newest first, as a strided view (no copy), contracted in one einsum
    past = np.lib.stride_tricks.sliding_window_view(w, order, axis=1)[:, : n - order, ::-1]
    pred = np.einsum("rji,ri->rj", past, coeffs)
    e = np.abs(w[:, order:] - pred)
    mid = half_window - order
    lo, hi = max(0, mid - center_half), mid + center_half
    center = e[:, lo:hi]
    peak = center.max(axis=1)
    outside = (np.einsum("ij,ij->i", e, e) - np.einsum("ij,ij->i", center, center)) / (e.shape[1] - (hi - lo))
    rms = np.sqrt(np.maximum(outside, 0.0))
    metric = 20 * np.log10((peak + _TINY) / (rms + _TINY))
    # silence has no residual to speak of: no metric
    silent = ~(np.max(np.abs(w), axis=1) > 1e-6)
    return metric, peak, lo + center.argmax(axis=1) - mid, silent


def _second_difference_rows(w: np.ndarray, *, half_window: int,
                            center_half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per window row (2*half_window + 2 frames): (metric dB, peak, peak offset, silent)."""
    w = w.astype(np.float64)
    d2 = np.abs(w[:, 2:] - 2 * w[:, 1:-1] + w[:, :-2])
    mid = half_window
    lo, hi = mid - center_half, mid + center_half
    center = d2[:, lo:hi]
    peak = center.max(axis=1)
    outside = (np.einsum("ij,ij->i", d2, d2) - np.einsum("ij,ij->i", center, center)) / (d2.shape[1] - (hi - lo))
    rms = np.sqrt(np.maximum(outside, 0.0))
    metric = 20 * np.log10((peak + _TINY) / (rms + _TINY))
    return metric, peak, lo + center.argmax(axis=1) - mid, ~(rms > 1e-9)


def _per_centre(x: np.ndarray, centers: np.ndarray, before: int, after: int, rows_fn, **kw):
    """Apply a per-window metric around every centre of x ((frames,) or
    (frames, channels)); each centre keeps its loudest-metric channel.
    Returns (metric dB or NaN, peak amplitude or NaN, frame of the peak)."""
    c = np.asarray(centers, dtype=np.int64)
    out_m = np.full(len(c), np.nan)
    out_a = np.full(len(c), np.nan)
    out_t = c.copy()
    ok = (c - before >= 0) & (c + after <= len(x))
    if not ok.any():
        return out_m, out_a, out_t
    w = windows_at(x, c[ok] - before, before + after)  # (P, n) or (P, channels, n): every channel in one batch
    nch = 1 if w.ndim == 2 else w.shape[1]
    rows = w.reshape(-1, w.shape[-1])
    m, a, off, silent = rows_fn(rows, **kw)
    m = np.where(silent, -np.inf, m).reshape(-1, nch)
    pick = np.argmax(m, axis=1)  # the first channel wins ties, as a per-channel loop would
    P = np.arange(len(m))
    best = m[P, pick]
    kept = np.flatnonzero(ok)
    out_m[kept] = np.where(np.isfinite(best), best, np.nan)
    out_a[kept] = a.reshape(-1, nch)[P, pick]
    out_t[kept] = c[ok] + off.reshape(-1, nch)[P, pick]
    return out_m, out_a, out_t


def lpc_residual_metric(x: np.ndarray, centers: np.ndarray, *, order: int = 12, half_window: int = 512,
                        center_half: int = 64, white_noise_db: float = -90.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per centre: (metric dB, residual peak amplitude, frame of the peak).

    x : (frames,) or (frames, channels); with channels, each centre reports
    the channel whose metric is largest. The metric is 20*log10(peak
    |residual| within +-center_half of the centre / RMS residual elsewhere
    in the window). white_noise_db regularises the predictor (a pure sine is
    otherwise a singular fit); -90 dB keeps the residual floor below float32
    noise.
    """
    return _per_centre(x, centers, half_window, half_window, _lpc_rows, order=order, half_window=half_window,
                       center_half=center_half, white_noise_db=white_noise_db)


def second_difference_metric(x: np.ndarray, centers: np.ndarray, *, half_window: int = 512,
                             center_half: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per centre: (metric dB, peak |2nd difference|, frame of the peak); x as for lpc_residual_metric."""
    return _per_centre(x, centers, half_window + 1, half_window + 1, _second_difference_rows,
                       half_window=half_window, center_half=center_half)


def _burst_db(x: np.ndarray, t: int, half: int, center_half: int, *, guard: int = 3, span: int = 88) -> float:
    """How far (dB) the second difference's RMS near frame t stands over its
    RMS in the rest of the +-half window, on the channel with the largest
    second difference at t: over the ``span`` frames either side of t
    (leaving ``guard`` frames around it) together, or over the ``span``
    after it alone, whichever is more. After alone: a burst that starts at
    the peak (a hat's first sample) has all of its energy after it, and the
    two sides' mean halves it (a hat on a boundary of the held-out corpus
    read 2.97 dB both sides, -17.3 before and +6.0 after). NaN near the ends."""
    sig = x[:, None] if x.ndim == 1 else x
    lo, hi = t - half - 1, t + half + 2
    if lo < 0 or hi > len(sig):
        return float("nan")
    w = sig[lo:hi].astype(np.float64)
    d2 = np.abs(w[2:] - 2 * w[1:-1] + w[:-2])  # d2[j] is at frame lo + 1 + j
    at = t - lo - 1
    c = int(np.argmax(d2[at]))
    d = d2[:, c]
    after = np.r_[at + guard + 1: min(len(d), at + guard + 1 + span)]
    near = np.r_[max(0, at - guard - span): at - guard, after]
    rest = np.ones(len(d), dtype=bool)
    rest[max(0, at - center_half): at + center_half + 1] = False
    floor = np.sqrt(np.mean(d[rest] ** 2)) if rest.any() else 0.0
    level = max(np.sqrt(np.mean(d[near] ** 2)), np.sqrt(np.mean(d[after] ** 2)) if len(after) else 0.0)
    return float(20 * np.log10((level + _TINY) / (floor + _TINY)))


def detect_clicks(x: np.ndarray, sr: int, boundaries: np.ndarray, *, order: int = 12, window_s: float = 0.0232,
                  center_s: float = 0.0015, z_min: float = 6.0, excess_min_db: float = 8.0,
                  n_reference: int = 80, min_level_dbfs: float = -80.0, seed: int = 0,
                  source=None) -> list[AudioDefect]:
    """Clicks at chunk boundaries.

    Parameters
    ----------
    x : (frames, channels) capture
    sr : sample rate
    boundaries : boundary frames
    order : LPC order
    window_s : analysis window (total) around each position
    center_s : half-width of the region around the boundary searched for the
        click (the rest of the window is the local floor)
    z_min, excess_min_db : confirmation (see confirm.confirm); excess in dB
    n_reference : non-boundary positions to compare with
    min_level_dbfs : a discontinuity whose peak (residual or second
        difference) is below this is not reported however much it stands
        out: -80 dBFS is inaudible, and on multi-tone content without a
        source such residue at a boundary is the content's own
    source : aligned source or None; when given, a confirmed boundary whose
        source shows the same discontinuity (a transient in the music) is
        dropped: it must exceed the source's metric by excess_min_db
    """
    b = np.asarray(boundaries, dtype=np.int64)
    if not len(b):
        return []
    half = int(window_s * sr / 2)
    ch = int(center_s * sr)
    refs = reference_positions(len(x), b, sr, count=n_reference, seed=seed)
    pos = np.concatenate([b, refs])
    found: dict[int, AudioDefect] = {}
    for method, fn, kw in (("lpc_residual", lpc_residual_metric, {"order": order}),
                           ("second_difference", second_difference_metric, {})):
        best_m, best_a, best_t = fn(x, pos, half_window=half, center_half=ch, **kw)
        conf = confirm(best_m[: len(b)], best_m[len(b):], z_min=z_min, excess_min=excess_min_db, scale_floor=1.0)
        for i, cf in enumerate(conf):
            if cf.confirmed and not (best_a[i] >= 10 ** (min_level_dbfs / 20)):
                cf.confirmed = False
        if source is None:
            # without a source a hat or snare hit on a boundary is a peak of
            # the second difference and of the residual too, but inside a
            # burst: clean music-like content's false clicks (both methods)
            # had the 2 ms around their peak 5.2-9.3 dB over the window's
            # floor; an impulse and a butt-joined gain step stay within 3 dB
            for i, cf in enumerate(conf):
                if cf.confirmed and _burst_db(x, int(best_t[i]), half, ch) > BURST_DB:
                    cf.confirmed = False
        if source is not None:
            hits = [i for i, cf in enumerate(conf) if cf.confirmed]
            if hits:

                for i in hits:
                    seg = np.asarray(source[max(0, b[i] - 2 * half - 2): b[i] + 2 * half + 2])
                    c0 = min(b[i], 2 * half + 2)
                    sm = np.nan_to_num(fn(seg, np.array([c0]), half_window=half, center_half=ch, **kw)[0][0],
                                       nan=-np.inf)
                    if best_m[i] - sm < excess_min_db:
                        conf[i].confirmed = False
        for i, cf in enumerate(conf):
            if not cf.confirmed:
                continue
            prev = found.get(i)
            if prev is not None and prev.score >= cf.score:
                prev.detail.setdefault("also", []).append(method)
                continue
            mag = float(20 * np.log10(best_a[i] + _TINY)) if method == "lpc_residual" else float(cf.excess)
            found[i] = AudioDefect(
                "click", float(best_t[i] / sr), i, mag, "dBFS" if method == "lpc_residual" else "dB",
                cf.score, cf.false_alarm_rate,
                {"method": method, "metric_db": cf.metric, "excess_db": cf.excess,
                 "n_reference": cf.n_reference, "also": [] if prev is None else [prev.detail["method"]]},
            )
    return [found[i] for i in sorted(found)]
