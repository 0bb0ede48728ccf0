"""Spectral steps: octave-band energies just after a boundary vs just before.

The broadband change (median over bands) is removed, so a pure gain change
is a level step, not a spectral one; what remains is a change of shape, what
a per-chunk EQ produces. With the aligned source the source's own band
changes are subtracted (a sweep moves across bands by itself).
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.fft

from .alignment import _mono
from .confirm import confirm, reference_positions, windows_at
from .defect import AudioDefect

_TINY = 1e-20
BAND_EDGES_HZ = 62.5 * 2.0 ** np.arange(0, 10)  # 62.5 Hz .. 32 kHz: 9 octave bands


# a band this low (dB of its summed Hann-window power) is digital silence, not a
# level: a -140 dBFS tone in a 2048 window reads -87, -140 dBFS white noise
# -107 to -85 per band, an all-zero window 10 log10(_TINY) = -200. The
# relative floor alone let a silent side through (every band equally at -200,
# each within 60 dB of the loudest): on Auralis's enhanced path the
# silence-lead track's music starts at a chunk boundary, and its source's
# silent side read as a 6.7 dB spectral step
SILENT_DB = -150.0

# how long each side of a boundary a sourceless spectral step must hold (s)
HOLD_S = 1.0


def band_energies_db(frames: np.ndarray, sr: int, edges_hz: np.ndarray = BAND_EDGES_HZ) -> np.ndarray:
    """frames: (n, length) -> (n, bands) energy in dB (Hann window, float32
    FFT, band sums accumulated in float64). Bands above Nyquist are empty."""
    length = frames.shape[1]
    spec = scipy.fft.rfft(np.asarray(frames, dtype=np.float32) * _hann32(length), axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    idx = np.minimum(np.searchsorted(np.fft.rfftfreq(length, 1 / sr), edges_hz), power.shape[1])
    lo, hi = idx[:-1], idx[1:]
    full = lo < hi
    e = np.zeros((len(power), len(lo)))
    if full.any():
        # bands are contiguous, so summing from each non-empty band's start
        # to the next one's is summing the band
        e[:, full] = np.add.reduceat(power[:, : hi[full][-1]], lo[full], axis=1, dtype=np.float64)
    return 10 * np.log10(e + _TINY)


def frame_band_levels_db(x: np.ndarray, sr: int, frame: int, hop: int,
                         edges_hz: np.ndarray = BAND_EDGES_HZ) -> np.ndarray:
    """Band levels (dB) of x on a grid of Hann frames x[j*hop : j*hop+frame],
    power summed over channels (independent channels of noise give twice
    the degrees of freedom of their mid signal): (frames, bands). All in
    float32 (a band sums at most ``frame / 2`` bins: 1e-4 relative), where
    band_energies_db's float64 sums cost 10x more on a whole stream."""
    sig = x[:, None] if x.ndim == 1 else x
    fr = np.lib.stride_tricks.sliding_window_view(sig, frame, axis=0)[::hop]  # (F, channels, frame)
    F, ch = fr.shape[:2]
    spec = scipy.fft.rfft(fr.reshape(F * ch, frame) * _hann32(frame), axis=1)
    flat = spec.view(np.float32)  # re, im interleaved: |X|^2 is the sum of each pair's squares
    np.square(flat, out=flat)
    idx = np.minimum(np.searchsorted(np.fft.rfftfreq(frame, 1 / sr), edges_hz), spec.shape[1])
    lo, hi = idx[:-1], idx[1:]
    e = np.zeros((F * ch, len(lo)), dtype=np.float32)
    full = lo < hi
    if full.any():
        e[:, full] = np.add.reduceat(flat[:, : 2 * hi[full][-1]], 2 * lo[full], axis=1)
    return 10 * np.log10(e.reshape(F, ch, -1).sum(axis=1, dtype=np.float64) + _TINY)


def _hann32(n: int, _cache: dict = {}) -> np.ndarray:  # noqa: B006 - a deliberate per-length cache
    if n not in _cache:
        _cache[n] = np.hanning(n).astype(np.float32)
    return _cache[n]


def spectral_step_metric(x: np.ndarray, centers: np.ndarray, sr: int, *, window: int = 4096, guard: int = 44,
                         source: np.ndarray | None = None, floor_db: float = -60.0,
                         x_mono: np.ndarray | None = None, min_bins: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per centre: (max |band change - median band change| in dB, worst band index).

    Bands more than ``floor_db`` below the loudest band on either side are
    ignored (their level is noise), so are bands in digital silence on
    either side (SILENT_DB: no shape to compare), and bands of fewer than
    ``min_bins`` FFT bins of the window."""
    c = np.asarray(centers, dtype=np.int64)

    def mid(sig) -> np.ndarray:
        # the channel sum: its band changes in dB are the channel mean's
        if hasattr(sig, "mono"):
            return sig.mono()
        return _mono(np.asarray(sig))  # x[:, 0] + x[:, 1]: a reduce over a 2-wide axis is ~10x slower

    def change(sig) -> tuple[np.ndarray, np.ndarray]:
        sig = mid(sig)
        ok = (c - guard - window >= 0) & (c + guard + window <= len(sig))
        d = np.full((len(c), len(BAND_EDGES_HZ) - 1), np.nan)
        valid = np.zeros((len(c), len(BAND_EDGES_HZ) - 1), dtype=bool)
        if ok.any():
            cc = c[ok]
            starts = np.concatenate([cc - guard - window, cc + guard])  # before, then after: one FFT batch
            e = band_energies_db(windows_at(sig, starts, window), sr)
            eb, ea = e[: len(cc)], e[len(cc):]
            d[ok] = ea - eb
            valid[ok] = ((eb > eb.max(axis=1, keepdims=True) + floor_db) & (ea > ea.max(axis=1, keepdims=True) + floor_db)
                         & (eb > SILENT_DB) & (ea > SILENT_DB))
            valid &= np.diff(np.searchsorted(np.fft.rfftfreq(window, 1 / sr), BAND_EDGES_HZ)) >= min_bins
        return d, valid

    d, valid = change(x if x_mono is None else x_mono)
    if source is not None:
        ds, vs = change(source)
        d, valid = d - ds, valid & vs
    d = np.where(valid, d, np.nan)
    enough = np.sum(valid, axis=1) >= 3
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row with no valid band: NaN, as intended
        shape = np.abs(d - np.nanmedian(d, axis=1, keepdims=True)) if d.size else d
    metric = np.full(len(c), np.nan)
    band = np.zeros(len(c), dtype=int)
    if enough.any():
        sh = np.where(np.isnan(shape[enough]), -np.inf, shape[enough])
        metric[enough] = sh.max(axis=1)
        band[enough] = sh.argmax(axis=1)
    return metric, band


def _shape_change_db(xm: np.ndarray, c: int, band: int, window: int, guard: int, *, frames: int,
                     sr: int) -> tuple[float, float]:
    """Signed change of one band relative to the median band change at c:
    from the one window each side next to c, and from the median band
    levels of ``frames`` windows each side (fewer where the stream ends),
    out of one FFT batch; NaN if a side has none."""
    before = [a for a in c - guard - window * np.arange(1, frames + 1) if a >= 0]
    after = [a for a in c + guard + window * np.arange(frames) if a + window <= len(xm)]
    if not before or not after:
        return float("nan"), float("nan")
    e = band_energies_db(windows_at(xm, np.array(before + after), window), sr)
    eb, ea = e[: len(before)], e[len(before):]
    now, held = ea[0] - eb[0], np.median(ea, axis=0) - np.median(eb, axis=0)
    return float(now[band] - np.median(now)), float(held[band] - np.median(held))


def detect_spectral_steps(x: np.ndarray, sr: int, boundaries: np.ndarray, *, source: np.ndarray | None = None,
                          window_s: float = 0.0464, guard_s: float = 0.001, z_min: float = 6.0,
                          excess_min_db: float = 1.0, scale_floor_db: float = 0.2, n_reference: int = 120,
                          seed: int = 0, x_mono: np.ndarray | None = None) -> list[AudioDefect]:
    """Spectral-shape steps at boundaries. magnitude: worst band's change
    relative to the broadband change, in dB; detail names the band."""
    b = np.asarray(boundaries, dtype=np.int64)
    if not len(b):
        return []
    refs = reference_positions(len(x), b, sr, count=n_reference, seed=seed + 2)
    # with a source, bands more than 30 dB under the loudest are left out: a
    # note starting in a band that was nearly empty makes its before/after
    # ratio huge on both sides, and their difference is EQ noise (up to ~5 dB
    # on clean music); without one, only a clearer outlier is a step
    m, band = spectral_step_metric(x, np.concatenate([b, refs]), sr, window=int(window_s * sr),
                                   guard=int(guard_s * sr), source=source,
                                   floor_db=-30.0 if source is not None else -60.0, x_mono=x_mono,
                                   # without a source, a band of 3 bins (62.5-125 Hz) is one bass
                                   # note: a new one on a boundary of clean music-like content read
                                   # 31-39 dB, 3 times in 1 h, and held for the chunk as an EQ would
                                   min_bins=1 if source is not None else 4)
    conf = confirm(m[: len(b)], m[len(b):], z_min=z_min if source is not None else max(z_min, 8.0),
                   excess_min=excess_min_db, scale_floor=scale_floor_db)
    if source is None:
        # without a source the change must also hold: a chunk's EQ lasts the
        # chunk, a hat starting on a boundary (clean music-like content: 22 dB
        # in its 4-8 kHz band, the source's own) is gone within 50 ms. Over
        # the median of the windows in up to HOLD_S each side (cut at half
        # the way to the neighbouring boundary, at least 8) its shape change
        # must keep its sign and half its size. 8 windows (0.37 s) let a hat
        # with its reverb tail after a quiet stretch through: 19-25 dB at the
        # boundary, decaying over 300 ms, its 8 windows' median still 10-14
        # (4 false steps in 10 h of a held-out music-like corpus)
        xm = _mono(np.asarray(x)) if x_mono is None else x_mono
        w, g = int(window_s * sr), int(guard_s * sr)
        edges = np.concatenate([[0], np.sort(b), [len(xm)]])
        for i, cf in enumerate(conf):
            if cf.confirmed:
                k = int(np.searchsorted(edges, b[i]))
                room = min(b[i] - edges[k - 1], edges[k + 1] - b[i]) // 2
                frames = max(8, min(int(HOLD_S * sr), int(room)) // w)
                now, held = _shape_change_db(xm, int(b[i]), band[i], w, g, frames=frames, sr=sr)
                if not (np.sign(held) == np.sign(now) and abs(held) >= 0.5 * abs(now)):
                    cf.confirmed = False
    out = []
    for i, cf in enumerate(conf):
        if cf.confirmed:
            lo = BAND_EDGES_HZ[band[i]]
            out.append(AudioDefect("spectral_step", float(b[i] / sr), i, cf.metric, "dB", cf.score,
                                   cf.false_alarm_rate, {"band_hz": [float(lo), float(lo * 2)],
                                                         "source_relative": source is not None,
                                                         "n_reference": cf.n_reference}))
    return out
