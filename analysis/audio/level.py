"""Level steps: the short-term level just after a boundary vs just before.

A chunk mastered with its own gain and butt-joined to its neighbour changes
level within a sample; a smooth join (a crossfade over the overlap) spreads
the same change over seconds and barely moves this metric.

When the aligned source is given, the step is measured against it: the
capture around the position is modelled as the source through ONE short FIR
(the mastering EQ and a sub-sample shift), the after side scaled by a gain g,
and g is the gain that best explains both sides (grid search, then a
parabola). Content changes (a note onset, a different spectrum after) are
explained by the source, so the metric is ~0.01 dB at clean positions of
noise and music and exact for a butt-joined gain change (on music-like
content through an IIR model with the local slope taken out: arx_step_db).

Without a source two statistics stand side by side: the plain 50 ms level
change, exact on steady tones, and band lines (band_line_step_db): per
octave band a robust line through a second each side, which sees 1 dB on
noise where the broadband level cannot. Neither sees 1 dB on dense
music-like content: its own dynamics move every band by 2-7 dB (MAD) over a
second. There a third stands in: waveform continuity (continuity.py), the
after side's samples against their prediction from the before side's.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from .alignment import _mono
from .confirm import confirm, reference_positions, windows_at
from .continuity import continuity_step
from .spectral import frame_band_levels_db

_TINY = 1e-20
# how far a smooth per-chunk join (a crossfade between two chunks' gains) can
# move the median level of the second either side of a boundary, dB
DRIFT_DB = 1.5
# how far the FIR model's step may differ from the ARX model's where both are
# identified: the FIR's misfit on music-like content reached 0.7 dB
AGREE_DB = 1.0
# the ARX gain's least curvature (see arx_step_db) to count as identified
ARX_IDENTIFIED = 1e-5
# where waveform continuity reads a step this far (plus half the step) from
# what a level statistic confirmed without a source, the level statistic saw
# content, not a gain: continuity reads clean noise's 1 dB steps within
# 0.7 dB, and a chord's onset that band lines read as 9-12 dB as 0.0-0.2
CONTRADICT_DB = 1.5
# how far (weighted chi^2 per band) the octave bands' steps may scatter about
# their mean for band_line_step_db to call it one gain step: on noise, clean
# positions p99 4.2 and 1 dB steps <= 2.3; a sweep crossing a band edge 22+
CONSISTENT_CHI = 8.0
# a band whose 46 ms blocks scatter about their line by more than this (dB
# RMS) is not a level plus a trend, and band_line_step_db leaves it out
LINE_SCATTER_DB = 3.0
# a gain moves every band: band_line_step_db's step is content where two or
# more bands with energy (the lines' scatter test aside) moved their median
# level by further than this, or half the step, plus 3 of the median's
# standard errors. Music getting louder in its low and mid bands read 11.3
# and 9.1 dB in band lines (held-out corpora, 20 h) while its 4-16 kHz bands'
# medians moved 0.1-0.4 dB; a chain's smooth join moves a second's median
# from its line's end by at most DRIFT_DB
BAND_AGREE_DB = 3.0


def _window_power(sig, starts: np.ndarray, length: int) -> np.ndarray:
    """Mean power (summed over channels) of sig[s:s+length] per start; NaN off the ends."""
    ok = (starts >= 0) & (starts + length <= len(sig))
    out = np.full(len(starts), np.nan)
    if ok.any():
        if isinstance(sig, np.ndarray):
            w = windows_at(sig, starts[ok], length).astype(np.float32, copy=False)
        else:  # an aligned source: frames mapped through its lags
            w = np.asarray(sig[starts[ok][:, None] + np.arange(length)[None, :]], dtype=np.float32)
        w = w.reshape(len(w), -1)
        out[ok] = np.einsum("ij,ij->i", w, w, dtype=np.float64) / length
    return out


def gain_step_db(x: np.ndarray, s: np.ndarray, centers: np.ndarray, sr: int, *, window_s: float = 0.05,
                 guard_s: float = 0.001, taps: int = 9) -> np.ndarray:
    """Per centre: the gain step in dB of x relative to the source s (both mono
    and aligned frame for frame) between the windows before and after it,
    through one shared FIR (see module docstring). NaN near the ends or where
    either side is silent."""
    n, g, h = int(window_s * sr), int(guard_s * sr), taps // 2
    c = np.asarray(centers, dtype=np.int64)
    ok = (c - g - n - h >= 0) & (c + g + n + h <= min(len(x), len(s)))
    out = np.full(len(c), np.nan)
    if not ok.any():
        return out
    cc = c[ok]

    def grams(starts: np.ndarray):
        """Normal equations of y = x[a:a+n] from the source rows s[a+j-h : a+j+h+1]
        (j < n) per start a: Gram matrix, right-hand side, energy of y. The
        Gram matrix of a sliding window is banded by lag: G[i, i+d] is one
        dot product for i = 0 and moves one frame per row, so 9 dot products
        and a few edge terms replace the (P, n, taps) outer products."""
        w = windows_at(s, starts - h, n + taps - 1).astype(np.float64)
        y = windows_at(x, starts, n).astype(np.float64)
        G = np.empty((len(starts), taps, taps))
        for d in range(taps):
            first = np.einsum("pn,pn->p", w[:, :n], w[:, d: d + n])
            m = taps - 1 - d  # rows after the first on this diagonal
            slide = np.cumsum(w[:, n: n + m] * w[:, n + d: n + d + m] - w[:, :m] * w[:, d: d + m], axis=1)
            diag = np.concatenate([first[:, None], first[:, None] + slide], axis=1)
            i = np.arange(taps - d)
            G[:, i, i + d] = diag
            G[:, i + d, i] = diag
        bv = np.stack([np.einsum("pn,pn->p", w[:, i: i + n], y) for i in range(taps)], axis=1)
        return G, bv, np.einsum("pn,pn->p", y, y)

    ga, ba, ea = grams(cc - g - n)
    gb, bb, eb = grams(cc + g)

    def resid(db: np.ndarray) -> np.ndarray:  # least-squares residual for each (position, gain)
        gg = 10 ** (db / 20)
        G = ga[:, None] + (gg ** 2)[..., None, None] * gb[:, None]
        bv = ba[:, None] + gg[..., None] * bb[:, None]
        return _ls_residual(G, bv, ea + eb)

    # a side where the source is silent has no gain to measure (whatever the
    # capture holds there, a zero-phase filter's pre-ringing of an onset just
    # after the boundary: -60 dB, read as a 6 dB step on Auralis's enhanced path)
    out[ok] = _scan_gain(resid, len(cc), np.minimum(ea, ga[:, h, h]), np.minimum(eb, gb[:, h, h]), n)[0]
    return out


def arx_step_db(x: np.ndarray, s: np.ndarray, centers: np.ndarray, sr: int, *, window_s: float = 0.01,
                guard_s: float = 0.001, taps: int = 9, na: int = 4) -> np.ndarray:
    """gain_step_db through an ARX model: y[t] = sum_i a_i y[t-i] + g sum_j
    b_j s[t+j-h], g = 1 before the centre and scanned after it. The past
    outputs let a short model be the IIR filter a mastering EQ is (a 9-tap
    FIR cannot be a 200 Hz shelf: on music-like content its misfit moved with
    the spectrum and read as 0.36 dB steps at p99); a gain scales y and its
    past alike, so the AR part is gain-free. On a tone or a sweep the capture
    predicts itself and g is not identified: NaN there, and the caller
    judges which model fits a stream (see detect_level_steps)."""
    n, gd, h = int(window_s * sr), int(guard_s * sr), taps // 2
    c = np.asarray(centers, dtype=np.int64)
    ok = (c - gd - n - max(h, na) >= 0) & (c + gd + n + h <= min(len(x), len(s)))
    out = np.full(len(c), np.nan)
    if not ok.any():
        return out
    cc = c[ok]
    m = na + taps

    def design(starts: np.ndarray):
        src = windows_at(s, starts - h, n + taps - 1).astype(np.float64)
        lagged = windows_at(x, starts - na, n + na).astype(np.float64)
        rows = np.concatenate([np.stack([lagged[:, na - i: na - i + n] for i in range(1, na + 1)], axis=1),
                               np.lib.stride_tricks.sliding_window_view(src, n, axis=1)], axis=1)  # (P, m, n)
        y = lagged[:, na:]
        return np.einsum("pjt,pkt->pjk", rows, rows), np.einsum("pjt,pt->pj", rows, y), np.einsum("pt,pt->p", y, y)

    # the slope-free step asks for centres one window apart, so one centre's
    # after window is the next one's before window: each distinct window once
    starts, inv = np.unique(np.concatenate([cc - gd - n, cc + gd]), return_inverse=True)
    gram, rhs, energy = design(starts)
    before, after = inv[: len(cc)], inv[len(cc):]
    gb, bb, eb = gram[before], rhs[before], energy[before]
    ga, ba, ea = gram[after], rhs[after], energy[after]

    def resid(db: np.ndarray) -> np.ndarray:
        d = np.ones(db.shape + (m,))
        d[..., na:] = (10 ** (db / 20))[..., None]  # g scales the source terms only
        G = gb[:, None] + d[..., :, None] * ga[:, None] * d[..., None, :]
        bv = bb[:, None] + d * ba[:, None]
        return _ls_residual(G, bv, eb + ea)

    k = na + h  # the source's own energy on each side (its centre tap): silent, no gain to measure
    db, bend = _scan_gain(resid, len(cc), np.minimum(ea, ga[:, k, k]), np.minimum(eb, gb[:, k, k]), n)
    # identified only where an error in g costs the fit something: the
    # residual's curvature over g (per dB^2), as a share of what it costs a
    # pure-gain model (2 (ln 10 / 20)^2 ea). Held-out seed 4242: tone 1e-12,
    # sweep <= 6e-8, periodic <= 4e-7, music-like >= 2e-4, noise >= 0.08
    curvature = bend / (2 * (np.log(10) / 20) ** 2 * np.maximum(ea, _TINY))
    db[~(curvature >= ARX_IDENTIFIED)] = np.nan
    out[ok] = db
    return out


def _ls_residual(G: np.ndarray, bv: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Least-squares residual energy per (position, gain) from the normal
    equations G coef = bv (lightly regularised: a silent side is singular)."""
    tr = np.trace(G, axis1=2, axis2=3)
    eye = np.eye(G.shape[-1])
    coef = np.linalg.solve(G + (1e-12 * tr + _TINY)[..., None, None] * eye, bv[..., None])[..., 0]
    return energy[:, None] - np.einsum("pki,pki->pk", bv, coef)


def _scan_gain(resid, count: int, e_before: np.ndarray, e_after: np.ndarray,
               n: int) -> tuple[np.ndarray, np.ndarray]:
    """The gain (dB) that minimises resid, and resid's curvature there (per
    dB^2): a 1 dB grid over +-12, 0.25 dB around the best, then a parabola
    through the three best (the residual is near-quadratic in dB there: the
    same gains as a 0.1 dB grid within 0.01 dB, for 7 solves instead of 21);
    NaN where a side's n frames are silent (below -90 dB; the callers pass
    the lesser of the capture's and the source's energy)."""
    P = np.arange(count)
    coarse = np.broadcast_to(np.arange(-12.0, 12.5, 1.0), (count, 25))
    best = coarse[P, np.argmin(resid(coarse), axis=1)]
    fine = best[:, None] + np.arange(-0.75, 0.76, 0.25)[None, :]
    r = resid(fine)
    k = np.clip(np.argmin(r, axis=1), 1, fine.shape[1] - 2)
    r0, r1, r2 = r[P, k - 1], r[P, k], r[P, k + 1]
    den = r0 - 2 * r1 + r2
    frac = np.where(den > 0, 0.5 * (r0 - r2) / np.where(den > 0, den, 1.0), 0.0)
    db = fine[P, k] + np.clip(frac, -1, 1) * 0.25
    floor = n * 10 ** (-90 / 10)
    db[(e_before < floor) | (e_after < floor)] = np.nan
    return db, den / 0.25 ** 2


def slope_free_step_db(x: np.ndarray, s: np.ndarray, centers: np.ndarray, sr: int, *,
                       window_s: float = 0.01, guard_s: float = 0.001) -> np.ndarray:
    """arx_step_db at the centre minus the mean of the same step one window
    before and one after: the jump of the source-relative gain with its local
    slope taken out. A compressor's attack after an onset moves the gain by
    0.5 dB in 50 ms, steadily; a chunk's gain change jumps within a sample."""
    c = np.asarray(centers, dtype=np.int64)
    off = int(window_s * sr) + 2 * int(guard_s * sr)
    steps = arx_step_db(x, s, np.concatenate([c, c - off, c + off]), sr, window_s=window_s, guard_s=guard_s)
    k = len(c)
    return steps[:k] - 0.5 * (steps[k:2 * k] + steps[2 * k:])


def level_step_metric(x: np.ndarray, centers: np.ndarray, sr: int, *, window_s: float = 0.05,
                      guard_s: float = 0.001, source=None,
                      silence_db: float = -90.0) -> np.ndarray:
    """dB(after) - dB(before) per centre (minus the source's own change when
    ``source`` is the aligned source); NaN where either side is silent."""
    c = np.asarray(centers, dtype=np.int64)
    n, g = int(window_s * sr), int(guard_s * sr)

    def change(sig: np.ndarray) -> np.ndarray:
        before = _window_power(sig, c - g - n, n)
        after = _window_power(sig, c + g, n)
        floor = sig.shape[1] * 10 ** (silence_db / 10)
        bad = ~((before > floor) & (after > floor))
        d = 10 * np.log10((after + _TINY) / (before + _TINY))
        d[bad] = np.nan
        return d

    d = change(x)
    if source is not None:
        d = d - change(source)
    return d


def persistent_step_db(x: np.ndarray, boundaries: np.ndarray, sr: int, *, frame_s: float = 0.05,
                       span_s: float = 1.0, silence_db: float = -90.0) -> np.ndarray:
    """Per boundary: median level (dB) of the frame_s frames in up to span_s
    after it minus the same before it, each span cut at half the distance to
    the neighbouring boundary (or the stream's end). Medians: a transient
    moves a few frames, a gain change moves them all. NaN when a side has
    fewer than 3 frames or is silent."""
    b = np.asarray(boundaries, dtype=np.int64)
    out = np.full(len(b), np.nan)
    n = int(frame_s * sr)
    if not len(b) or n <= 0:
        return out
    edges = np.concatenate([[0], b, [len(x)]])
    floor = x.shape[1] * 10 ** (silence_db / 10) if x.ndim == 2 else 10 ** (silence_db / 10)
    for i, c in enumerate(b):
        before_span = min(int(span_s * sr), (c - edges[i]) // 2)
        after_span = min(int(span_s * sr), (edges[i + 2] - c) // 2)
        k_b, k_a = before_span // n, after_span // n
        if k_b < 3 or k_a < 3:
            continue
        pb = _window_power(x, c - n * np.arange(1, k_b + 1), n)
        pa = _window_power(x, c + n * np.arange(k_a), n)
        mb, ma = np.nanmedian(pb), np.nanmedian(pa)
        if not (mb > floor and ma > floor):
            continue
        out[i] = 10 * np.log10(ma / mb)
    return out


def _robust_line_at_zero(y: np.ndarray, t: np.ndarray, w0: np.ndarray,
                         iters: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row p and column b: the value at t = 0 of a line fitted to
    y[p, :, b] over t[p, :] (rows' frames weighted w0, 0 or 1), with
    ``iters`` Tukey-bisquare reweightings (a drum hit or a note onset in a
    second of frames is an outlier, not the trend), and that value's
    variance from the residual scatter, and that scatter per frame (the
    weighted residual's RMS). (P, K, B) -> (P, B) each."""
    t = t[..., None]
    w = np.broadcast_to(w0[..., None], y.shape)
    inside = w0[..., None] > 0
    for it in range(iters + 1):
        s0, s1, s2 = w.sum(1), (w * t).sum(1), (w * t * t).sum(1)
        sy, sty = (w * y).sum(1), (w * t * y).sum(1)
        det = s0 * s2 - s1 ** 2
        with np.errstate(all="ignore"):
            a = (s2 * sy - s1 * sty) / det
            slope = (s0 * sty - s1 * sy) / det
        r = y - a[:, None] - slope[:, None] * t
        if it < iters:
            with warnings.catch_warnings():  # a row with no frames has no median: NaN, as intended
                warnings.simplefilter("ignore", RuntimeWarning)
                scale = 6 * np.maximum(np.nanmedian(np.where(inside, np.abs(r), np.nan), axis=1), 1e-6)
            u = r / scale[:, None]
            w = w0[..., None] * np.where(np.abs(u) < 1, (1 - u ** 2) ** 2, 0.0)
    with np.errstate(all="ignore"):
        scatter = (w * r * r).sum(1) / np.maximum(s0 - 2, 1)
        return a, scatter * s2 / det, np.sqrt(scatter)


def band_line_step_db(x: np.ndarray, sr: int, boundaries: np.ndarray, centers: np.ndarray, *,
                      frame: int = 2048, span_s: float = 1.0, guard_s: float = 0.001, floor_db: float = -50.0,
                      min_frames: int = 16, chi_max: float = CONSISTENT_CHI,
                      scatter_max_db: float = LINE_SCATTER_DB, judged: int | None = None) -> np.ndarray:
    """The level step at each centre without a source, from octave-band
    levels of 2048-frame blocks: per band a robust line through up to
    ``span_s`` of blocks on each side (cut at half the way to the next
    boundary), each side's line evaluated at the centre; the step is the
    bands' inverse-variance mean of (after - before). Lines, not levels: a
    smooth join ramps the new chunk's gain over its first second and a
    mastering chain drifts, and a line through each side follows both while
    a butt-joined gain change is a jump between them. Bands: on noise the
    high bands' levels are precise (thousands of degrees of freedom per
    block) where the broadband 50 ms level is ruled by the bass's few. NaN
    where the bands disagree (weighted scatter over ``chi_max``: a sweep
    crossing a band edge, a chord change); bands whose blocks scatter
    about their line by more than ``scatter_max_db`` are left out (a line is
    no model of them: a time code's 100 ms slots, a sweep entering a band
    read 5-17 dB, noise's bands 0.2-3); NaN too where a side is short or silent:
    under ``min_frames`` blocks (0.74 s), so the reference positions near a
    boundary, whose short lines scatter more, do not widen or break the
    reference distribution a boundary with a full second is judged by. NaN
    too where the bands' median levels say the change is not one gain
    (BAND_AGREE_DB), at the first ``judged`` centres only (default all): a
    veto for the positions being judged, which leaves the references'
    spread as content makes it (applied to them too, it took content's
    large values out of the reference distribution, and boundaries it let
    through scored higher: two new false steps in 0.7 h of a held-out corpus)."""
    b = np.sort(np.asarray(boundaries, dtype=np.int64))
    c = np.asarray(centers, dtype=np.int64)
    out = np.full(len(c), np.nan)
    hop = frame  # abutting blocks: half the cost of overlapping ones, on noise z 7-10 for 1 dB either way
    if len(x) < 2 * frame or not len(c):
        return out
    levels = frame_band_levels_db(x, sr, frame, hop)  # (F, B)
    F = len(levels)
    edges = np.concatenate([[0], b, [len(x)]])
    k = np.searchsorted(edges, c)
    prev = edges[np.clip(k - 1, 0, len(edges) - 1)]
    nxt = edges[np.clip(k, 0, len(edges) - 1)]
    nxt = np.where(nxt == c, edges[np.clip(k + 1, 0, len(edges) - 1)], nxt)  # a boundary's own neighbour
    span, g = int(span_s * sr), int(guard_s * sr)
    lo = c - np.minimum(span, (c - prev) // 2)
    hi = c + np.minimum(span, (nxt - c) // 2)
    K = span // hop + 2
    sides = []
    # blocks wholly inside [lo, c - g) before, [c + g, hi) after
    for j0, j1 in ((-(-lo // hop), (c - g - frame) // hop + 1), (-(-(c + g) // hop), (hi - frame) // hop + 1)):
        j = j0[:, None] + np.arange(K)[None, :]
        w0 = ((j < np.minimum(j1, F)[:, None]) & (j >= 0)).astype(np.float64)
        j = np.clip(j, 0, F - 1)
        y = levels[j]
        t = (j * hop + frame / 2 - c[:, None]) / sr
        a, var, scatter = _robust_line_at_zero(y, t, w0)
        n = w0.sum(1)
        mean = (w0[..., None] * y).sum(1) / np.maximum(n, 1)[:, None]
        with warnings.catch_warnings():  # a side with no blocks has no median: NaN, as intended
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(np.where(w0[..., None] > 0, y, np.nan), axis=1)
        sides.append((np.where((n >= min_frames)[:, None], a, np.nan), var, mean, scatter, median, n))
    (ab, vb, mb, sb, medb, nb), (aa, va, ma, sa, meda, na) = sides
    step, v = aa - ab, vb + va
    top = np.maximum(mb.max(1), ma.max(1))[:, None]
    with np.errstate(invalid="ignore"):
        energy = (mb > top + floor_db) & (ma > top + floor_db) & np.isfinite(step)
        ok = energy & (v > 0) & (sb <= scatter_max_db) & (sa <= scatter_max_db)
    wv = np.where(ok, 1 / np.where(ok, v, 1.0), 0.0)
    n = ok.sum(1)
    with np.errstate(all="ignore"):
        mean_step = (wv * np.where(ok, step, 0.0)).sum(1) / wv.sum(1)
        chi = (wv * np.where(ok, step - mean_step[:, None], 0.0) ** 2).sum(1) / np.maximum(n - 1, 1)
        # every band with energy, whatever its scatter: the median's standard
        # error is 1.25 sigma / sqrt(blocks), sigma the band's scatter about its line
        se = 1.2533 * np.sqrt(sb ** 2 / np.maximum(nb, 1)[:, None] + sa ** 2 / np.maximum(na, 1)[:, None])
        off = np.abs((meda - medb) - mean_step[:, None])
        tol = np.maximum(BAND_AGREE_DB, 0.5 * np.abs(mean_step))[:, None] + 3 * se
        disagree = (energy & (off > tol)).sum(1)
    disagree[len(c) if judged is None else judged:] = 0
    good = (n >= 2) & (chi <= chi_max) & (disagree < 2)
    out[good] = mean_step[good]
    return out


def _waveform_continuity(x: np.ndarray, b: np.ndarray, refs: np.ndarray, step_all: np.ndarray, t_all: np.ndarray,
                         conf: list, statistic: list, open_: np.ndarray, *, z_min: float, excess_min_db: float) -> None:
    """The third stand-in without a source, for dense music-like content
    where neither level statistic sees 1 dB (continuity.py): the
    continuity t-value judged against the references' (z_min, beating every
    one), and its step in dB at least ``excess_min_db``, so that perfectly
    predictable content (a harmonic tone, whose t-values are huge for a
    0.00 dB wobble of the chain's gain ramp) cannot confirm a nothing. The
    references' statistic costs ~0.1 s per 30 s stream: it is computed only
    when an open boundary could confirm (|t| >= z_min / 2 and the dB).
    step_all, t_all: the statistic at every boundary. In place in ``conf``
    and ``statistic``."""
    step_b, t_b = step_all[open_], t_all[open_]
    with np.errstate(invalid="ignore"):
        could = (np.abs(t_b) >= z_min / 2) & (np.abs(step_b) >= excess_min_db)
    if not could.any():
        return
    # judged with the channels' agreement on both sides of the comparison
    # (the references lose their one-channel events too); the contradiction
    # test before this keeps every boundary's reading
    step_r, t_r = continuity_step(x, refs, agree=True)
    step_b, t_b = continuity_step(x, b[open_], agree=True)
    idx = np.nonzero(open_)[0]
    for j, cf in enumerate(confirm(t_b, t_r, z_min=z_min, two_sided=True)):
        i = idx[j]
        # as for band lines: only where the statistic describes most of the stream
        if cf.confirmed and could[j] and cf.n_reference >= len(refs) // 3:
            conf[i] = dataclasses.replace(cf, metric=float(step_b[j]))
            statistic[i] = "waveform continuity"


def _spread(ref: np.ndarray) -> float:
    """How far a model's clean positions scatter: the 90th percentile of
    |value - median| (the tails decide false alarms, not the MAD)."""
    r = ref[np.isfinite(ref)]
    if len(r) < 8:
        return np.inf
    return float(np.percentile(np.abs(r - np.median(r)), 90))


def detect_level_steps(x: np.ndarray, sr: int, boundaries: np.ndarray, *, source: np.ndarray | None = None,
                       window_s: float = 0.05, guard_s: float = 0.001, z_min: float = 6.0,
                       excess_min_db: float = 0.3, scale_floor_db: float = 0.05, n_reference: int | None = None,
                       seed: int = 0, x_mono: np.ndarray | None = None) -> list:
    """Level steps at boundaries. magnitude: signed step in dB (after - before).

    Parameters
    ----------
    source : aligned source (same shape as x) or None
    window_s : length of the level window on each side
    guard_s : gap left either side of the boundary (a click must not count)
    z_min, excess_min_db, scale_floor_db : confirmation, two-sided
    """
    from .defect import AudioDefect

    b = np.asarray(boundaries, dtype=np.int64)
    if not len(b):
        return []
    # the source-relative metric is precise (40 references suffice) and costs
    # a batched solve per position; the plain one is noisy and cheap
    count = n_reference or (40 if source is not None else 120)
    refs = reference_positions(len(x), b, sr, count=count, seed=seed + 1)
    if source is not None:
        sm = source.mono() if hasattr(source, "mono") else _mono(np.asarray(source))
        xm = _mono(x) if x_mono is None else x_mono
        at = np.concatenate([b, refs])
        m = gain_step_db(xm, sm, at, sr, window_s=window_s, guard_s=guard_s)
        # the IIR model with its slope taken out, where it explains this
        # stream's clean positions better (music-like held-out corpus: clean
        # p99.9 0.63 -> 0.05 dB; on a tone or sweep it is not identified and
        # its references scatter by dB, so the FIR model stays)
        # judged on the references first: the boundaries need the ARX only where it wins
        d_ref = slope_free_step_db(xm, sm, refs, sr)
        if _spread(d_ref) < _spread(m[len(b):]):
            d = np.concatenate([slope_free_step_db(xm, sm, b, sr), d_ref])
            # per position too: where the capture predicts itself (a time
            # code's tone slot) the ARX gain is arbitrary, dB away from the FIR's
            with np.errstate(invalid="ignore"):
                m = np.where(np.isfinite(d) & (np.abs(d - m) <= AGREE_DB + 0.25 * np.abs(m)), d, m)
    else:
        m = level_step_metric(x, np.concatenate([b, refs]), sr, window_s=window_s, guard_s=guard_s)
        # without a source a step must also persist: the change over 200 ms
        # windows must agree in sign and be at least half as large. A gain
        # change does; a change of content (the time code's next 100 ms slot)
        # does not. A veto only: the 50 ms metric and its references decide.
        long_ = level_step_metric(x, b, sr, window_s=4 * window_s, guard_s=guard_s)
        # and over a second or so each side, as the median of 50 ms levels: a
        # note onset just after a boundary is 10 dB over 200 ms and gone by
        # the median (music-like held-out corpus: 5 false steps in 40 min);
        # a chunk's own gain holds for the whole chunk
        # (the two may differ by what a chunk chain's smooth join moves a
        # second's median, DRIFT_DB, or a quarter of the step: a drum hit on a
        # boundary of clean music-like content read 7.4 dB over 50 ms and 4.2
        # over the second's median, and the hit's level decayed within 300 ms)
        held = persistent_step_db(x, b, sr, frame_s=window_s)
        mb = m[: len(b)]
        with np.errstate(invalid="ignore"):
            fleeting = ~((np.sign(long_) == np.sign(mb)) & (np.abs(long_) >= 0.5 * np.abs(mb)))
            gone = np.abs(mb - held) > np.maximum(DRIFT_DB, 0.25 * np.abs(mb))  # NaN (a short side): no veto
        mb[fleeting | gone] = np.nan
    conf = confirm(m[: len(b)], m[len(b):], z_min=z_min, excess_min=excess_min_db, scale_floor=scale_floor_db,
                   two_sided=True)
    statistic = ["source-relative" if source is not None else "50 ms level"] * len(b)
    if source is None:
        # the 50 ms level is exact on a tone and blind on noise (its bass has
        # few degrees of freedom: 1 dB steps scored z 0.5-5); band lines over
        # a second each side see 1 dB on noise at z 7-10, and stand in
        # wherever the 50 ms level does not confirm
        lines = band_line_step_db(x, sr, b, np.concatenate([b, refs]), judged=len(b))
        for i, cf in enumerate(confirm(lines[: len(b)], lines[len(b):], z_min=z_min, excess_min=excess_min_db,
                                       scale_floor=scale_floor_db, two_sided=True)):
            # and only where the lines describe most of the stream: on a
            # sweep most references' bands fail the scatter test, and the 17
            # steady survivors of one made a 1.0 dB wobble a confirmed step
            if cf.confirmed and not conf[i].confirmed and cf.n_reference >= len(refs) // 3:
                conf[i], statistic[i] = cf, "band lines"
        step_c, t_c = continuity_step(x, b)
        for i, cf in enumerate(conf):
            # the waveform contradicts a level statistic: a chord's onset just
            # before a boundary of clean music-like content read 9-12 dB in
            # band lines (3 times in 10 h), continuity 0.0-0.2 dB there
            if cf.confirmed and abs(step_c[i] - cf.metric) > CONTRADICT_DB + 0.5 * abs(cf.metric):
                conf[i] = dataclasses.replace(cf, confirmed=False)
        open_ = np.array([not cf.confirmed for cf in conf])
        if open_.any():
            _waveform_continuity(x, b, refs, step_c, t_c, conf, statistic, open_, z_min=z_min,
                                 excess_min_db=excess_min_db)
    return [AudioDefect("level_step", float(b[i] / sr), i, cf.metric, "dB", cf.score, cf.false_alarm_rate,
                        {"source_relative": source is not None, "n_reference": cf.n_reference,
                         "statistic": statistic[i]})
            for i, cf in enumerate(conf) if cf.confirmed]
