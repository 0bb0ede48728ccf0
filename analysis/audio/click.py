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
from scipy.linalg import solve_toeplitz

from .confirm import confirm, reference_positions, windows
from .defect import AudioDefect

_TINY = 1e-20


def lpc_residual_metric(x: np.ndarray, centers: np.ndarray, *, order: int = 12, half_window: int = 512,
                        center_half: int = 64, white_noise_db: float = -90.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per centre: (metric dB, residual peak amplitude, frame of the peak).

    x : 1-D signal. The metric is 20*log10(peak |residual| within
    +-center_half of the centre / RMS residual elsewhere in the window).
    white_noise_db regularises the predictor (a pure sine is otherwise a
    singular fit); -90 dB keeps the residual floor below float32 noise.
    """
    c = np.asarray(centers, dtype=np.int64)
    out_m = np.full(len(c), np.nan)
    out_a = np.full(len(c), np.nan)
    out_t = c.copy()
    w, ok = windows(x, c, half_window, half_window)
    if not len(w):
        return out_m, out_a, out_t
    w = w.astype(np.float64)
    n = w.shape[1]
    tapered = w * np.hanning(n)
    spec = np.fft.rfft(tapered, 2 * n, axis=1)
    r = np.fft.irfft(np.abs(spec) ** 2, 2 * n, axis=1)[:, : order + 1]
    r[:, 0] *= 1 + 10 ** (white_noise_db / 10)
    coeffs = np.zeros((len(w), order))
    for i in range(len(w)):
        if r[i, 0] > _TINY:
            try:
                coeffs[i] = solve_toeplitz(r[i, :order], r[i, 1: order + 1])
            except np.linalg.LinAlgError:
                pass
    pred = np.zeros((len(w), n - order))
    for k in range(1, order + 1):
        pred += coeffs[:, k - 1: k] * w[:, order - k: n - k]
    e = np.abs(w[:, order:] - pred)
    mid = half_window - order
    lo, hi = max(0, mid - center_half), mid + center_half
    center = e[:, lo:hi]
    outside = np.concatenate([e[:, :lo], e[:, hi:]], axis=1)
    peak = center.max(axis=1)
    rms = np.sqrt(np.mean(outside ** 2, axis=1))
    out_m[ok] = 20 * np.log10((peak + _TINY) / (rms + _TINY))
    out_a[ok] = peak
    out_t[ok] = c[ok] - mid + lo + center.argmax(axis=1)
    # silence has no residual to speak of: no metric
    silent = ~(np.max(np.abs(w), axis=1) > 1e-6)
    out_m[np.flatnonzero(ok)[silent]] = np.nan
    return out_m, out_a, out_t


def second_difference_metric(x: np.ndarray, centers: np.ndarray, *, half_window: int = 512,
                             center_half: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per centre: (metric dB, peak |2nd difference|, frame of the peak)."""
    c = np.asarray(centers, dtype=np.int64)
    out_m = np.full(len(c), np.nan)
    out_a = np.full(len(c), np.nan)
    out_t = c.copy()
    w, ok = windows(x, c, half_window + 1, half_window + 1)
    if not len(w):
        return out_m, out_a, out_t
    w = w.astype(np.float64)
    d2 = np.abs(w[:, 2:] - 2 * w[:, 1:-1] + w[:, :-2])
    mid = half_window
    lo, hi = mid - center_half, mid + center_half
    center = d2[:, lo:hi]
    outside = np.concatenate([d2[:, :lo], d2[:, hi:]], axis=1)
    peak = center.max(axis=1)
    rms = np.sqrt(np.mean(outside ** 2, axis=1))
    out_m[ok] = 20 * np.log10((peak + _TINY) / (rms + _TINY))
    out_a[ok] = peak
    out_t[ok] = c[ok] - mid + lo + center.argmax(axis=1)
    silent = ~(rms > 1e-9)
    out_m[np.flatnonzero(ok)[silent]] = np.nan
    return out_m, out_a, out_t


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
        best_m = np.full(len(pos), -np.inf)
        best_a = np.full(len(pos), np.nan)
        best_t = pos.copy()
        for c in range(x.shape[1]):
            m, a, t = fn(x[:, c], pos, half_window=half, center_half=ch, **kw)
            m = np.where(np.isnan(m), -np.inf, m)
            better = m > best_m
            best_m[better], best_a[better], best_t[better] = m[better], a[better], t[better]
        best_m[~np.isfinite(best_m)] = np.nan
        conf = confirm(best_m[: len(b)], best_m[len(b):], z_min=z_min, excess_min=excess_min_db, scale_floor=1.0)
        for i, cf in enumerate(conf):
            if cf.confirmed and not (best_a[i] >= 10 ** (min_level_dbfs / 20)):
                cf.confirmed = False
        if source is not None:
            hits = [i for i, cf in enumerate(conf) if cf.confirmed]
            if hits:

                for i in hits:
                    seg = np.asarray(source[max(0, b[i] - 2 * half - 2): b[i] + 2 * half + 2])
                    c0 = min(b[i], 2 * half + 2)
                    sm = max(np.nan_to_num(fn(seg[:, c], np.array([c0]), half_window=half, center_half=ch, **kw)[0][0],
                                           nan=-np.inf) for c in range(seg.shape[1]))
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
