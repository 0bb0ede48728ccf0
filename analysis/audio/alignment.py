"""Alignment of a capture against its source: dropped and repeated samples.

The lag (source frame - capture frame) is measured by normalised
cross-correlation at checkpoints: just before and just after every boundary
and every ``check_s`` in between. Where the lag changes by a whole number of
samples, the exact frame of the change is found by fitting a short FIR
(gain + mild EQ + sub-sample shift) from the source to the capture under
each lag and choosing the split that explains the capture best. A processed
(mastered) stream therefore aligns as well as a bit-exact one.

Lag up = source frames skipped = ``dropped_samples``; down = ``repeated_samples``.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from .defect import AudioDefect
from .kept import derived, frozen

_TINY = 1e-20
FIRST_AGREE = 3.0  # frames: how far the first checkpoint may move the coarse offset on its own


@dataclass
class Alignment:
    start_lag: int | None
    segments: list[tuple[int, int]] = field(default_factory=list)  # (first capture frame, lag) from there on
    checkpoints: list[tuple[int, float, float]] = field(default_factory=list)  # (frame, lag, correlation)
    scores: list[float] = field(default_factory=list)  # dB improvement of each lag change

    def lag_at(self, frames: np.ndarray) -> np.ndarray:
        if len(self.segments) == 1:
            return np.full(np.shape(frames), self.segments[0][1], dtype=np.int64)
        starts = np.array([s for s, _ in self.segments])
        lags = np.array([lag for _, lag in self.segments])
        return lags[np.clip(np.searchsorted(starts, frames, side="right") - 1, 0, len(lags) - 1)]


def _mono(x: np.ndarray) -> np.ndarray:
    """Mid signal (float32, one pass); 1-D input is taken as already mono."""
    if x.ndim == 1:
        return x
    return derived("mono", x, lambda a: frozen(a[:, 0] + a[:, 1] if a.shape[1] == 2
                                              else a.mean(axis=1, dtype=np.float32)))


# A float32 search's floor: source spans this far (in energy) below the
# searched window are no candidates, since there the float32 correlation's
# rounding, divided by a near-zero energy, reads as a match (a track's silent
# lead). No real match is 60 dB louder in the capture than in its source.
QUIET_SOURCE = 1e-6


class BlockSpectra:
    """A signal's spectrum in overlapping blocks (overlap-save), each made
    the first time a search reaches it and kept: the searches of a run all
    look in the same few tracks, so a search costs the window's FFT at the
    block's size and one inverse FFT per block, instead of two FFTs of the
    whole span searched (benchmarks/analysis_searches.py). Blocks overlap by
    the longest window, so each lag's correlation lies whole inside one
    block. float32: these searches place a peak (see QUIET_SOURCE)."""

    def __init__(self, signal: np.ndarray, max_window: int, min_block: int = 1 << 16):
        self.signal = signal
        self.max_window = max_window
        # three windows a block: fewer inverse FFTs than two, smaller ones than four
        self.block = max(min_block, 1 << int(np.ceil(np.log2(3 * max_window))))
        self.hop = self.block - max_window
        self._spectra: dict[int, np.ndarray] = {}

    def spectrum(self, j: int) -> np.ndarray:
        spec = self._spectra.get(j)
        if spec is None:
            a = j * self.hop
            spec = self._spectra[j] = scipy.fft.rfft(self.signal[a:a + self.block].astype(np.float32), self.block)
        return spec

    def correlation(self, window: np.ndarray, lo: int, count: int) -> np.ndarray:
        """sum(window * signal[p:p + len(window)]) for p in [lo, lo + count), float32."""
        n = window.size
        if n > self.max_window:
            raise ValueError(f"window of {n} frames is longer than these blocks allow ({self.max_window})")
        wspec = scipy.fft.rfft(window.astype(np.float32), self.block)
        np.conjugate(wspec, out=wspec)
        out = np.empty(count, dtype=np.float32)
        for j, here, there in self.spans(lo, count):
            out[there] = scipy.fft.irfft(self.spectrum(j) * wspec, self.block)[here]
        return out

    def spans(self, lo: int, count: int) -> Iterator[tuple[int, slice, slice]]:
        """(block, its slice, the output's slice) covering lags [lo, lo + count):
        block j serves lags j*hop .. j*hop + hop - 1, which read only its own
        frames (hop - 1 + window <= block)."""
        p, end = lo, lo + count
        while p < end:
            j = p // self.hop
            a = j * self.hop
            stop = min(end, a + self.hop)
            yield j, slice(p - a, stop - a), slice(p - lo, stop - lo)
            p = stop


def valid_correlation(ref: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """correlate(ref, seg, "valid") by one FFT of ref's own length: the valid
    lags never wrap, so no padding to the full convolution size is needed
    (scipy's correlate pads to len(ref) + len(seg) - 1). Computed in the
    inputs' precision: float32 inputs give a float32 FFT, for searches that
    only need the peak's place, not a sub-sample lag (see QUIET_SOURCE)."""
    n = scipy.fft.next_fast_len(len(ref), real=True)
    spec = scipy.fft.rfft(ref, n) * np.conj(scipy.fft.rfft(seg, n))
    return scipy.fft.irfft(spec, n)[: len(ref) - len(seg) + 1]


# A peak this high at the expected lag is the one the full search would pick:
# every normalised correlation is at most 1 (+ rounding), so the best is
# within the 0.05 the candidates are taken from, and the expected lag is
# nearest itself. Margins keep the decision the full search's despite its
# different rounding (FFT, running sums).
SURE_AT_EXPECTED = 0.951
_TIE = 1e-9  # a neighbour this close is a tie the two roundings may break differently
_QUIET_SHARE = 1e-6  # windows this far below the searched span's energy: its running sums round too coarsely


def _peak_at_expected(seg: np.ndarray, ref: np.ndarray, k: int, e_seg: float) -> tuple[float, float, float] | None:
    """(fraction, correlation, sharpness) of estimate_lag's answer when
    ref[k:] (the expected lag) is a clear local peak above SURE_AT_EXPECTED,
    from three dot products instead of a correlation over every lag; None
    when only the full search can tell. A stream that is where it is expected
    (most checkpoints) then costs no FFT."""
    w = len(seg)
    if k < 1 or k + 1 + w > len(ref):
        return None
    ncc = []
    floor = _QUIET_SHARE * float(np.dot(ref, ref))
    for j in (k - 1, k, k + 1):
        r = ref[j: j + w]
        e = float(np.dot(r, r))
        if e < max(floor, 1e-12):
            return None
        ncc.append(float(np.dot(r, seg)) / np.sqrt(e_seg * e))
    y0, y1, y2 = ncc
    if y1 < SURE_AT_EXPECTED or y1 <= max(y0, y2) + _TIE:
        return None
    den = y0 - 2 * y1 + y2
    return (float(0.5 * (y0 - y2) / den) if den < 0 else 0.0), y1, y1 - max(y0, y2)


def estimate_lag(x: np.ndarray, s: np.ndarray, at: int, expected: int, *, window: int = 4096,
                 max_shift: int = 2048) -> tuple[float, float, float] | None:
    """(lag, normalised correlation, peak sharpness) of x[at:at+window] within s around
    at+expected +- max_shift; sub-sample by parabolic interpolation. Among
    near-equal peaks (periodic content) the one nearest ``expected`` wins."""
    seg = x[at: at + window].astype(np.float64)
    lo = at + expected - max_shift
    hi = at + expected + window + max_shift
    if len(seg) < window or lo < 0 or hi > len(s):
        lo, hi = max(lo, 0), min(hi, len(s))
        if len(seg) < window // 4 or hi - lo < len(seg):
            return None
    ref = s[lo:hi].astype(np.float64)
    e_seg = float(np.dot(seg, seg))
    if e_seg < 1e-12:
        return None
    sure = _peak_at_expected(seg, ref, at + expected - lo, e_seg)
    if sure is not None:
        return expected + sure[0], sure[1], sure[2]
    c = valid_correlation(ref, seg)
    cs = np.concatenate([[0.0], np.cumsum(ref ** 2)])
    e_ref = cs[len(seg):] - cs[: len(cs) - len(seg)]
    ncc = c / np.sqrt(e_seg * np.maximum(e_ref, 1e-12))
    best = float(ncc.max())
    # periodic content has many near-equal peaks; take local maxima within 5%
    # of the best and keep the one nearest the lag we expect
    peak = np.ones(len(ncc), dtype=bool)
    peak[1:] &= ncc[1:] >= ncc[:-1]
    peak[:-1] &= ncc[:-1] >= ncc[1:]
    cand = np.flatnonzero(peak & (ncc >= best - 0.05))
    if not len(cand):
        cand = np.array([int(np.argmax(ncc))])
    lags = lo + cand - at
    k = int(cand[np.argmin(np.abs(lags - expected))])
    frac = 0.0
    if 0 < k < len(ncc) - 1:
        y0, y1, y2 = ncc[k - 1], ncc[k], ncc[k + 1]
        den = y0 - 2 * y1 + y2
        frac = float(0.5 * (y0 - y2) / den) if den < 0 else 0.0
    # how much the correlation falls one sample off the peak: near zero for
    # low-frequency content, where a lag is not known to the sample
    if 0 < k < len(ncc) - 1:
        sharp = float(ncc[k] - max(ncc[k - 1], ncc[k + 1]))
    else:
        sharp = 0.0
    return lo + k - at + frac, float(ncc[k]), sharp


def _first_loud(x: np.ndarray, threshold: float, block: int = 1 << 16) -> int | None:
    """First frame of x over threshold; reads only as far as it needs to."""
    for a in range(0, len(x), block):
        hit = np.flatnonzero(np.abs(x[a: a + block]) > threshold)
        if len(hit):
            return a + int(hit[0])
    return None


def coarse_offset(x: np.ndarray, s: np.ndarray, sr: int, expected: int = 0, search_s: float = 0.5) -> int | None:
    """Source offset of the capture's first frame, searching +-search_s around
    ``expected`` from the first non-silent second of the capture, then the
    whole source if that fails."""
    xm, sm = _mono(x), _mono(s)
    at = _first_loud(xm, 1e-4)
    if at is None:
        return None
    win = min(sr, len(xm) - at)
    for shift in (int(search_s * sr), len(sm)):
        r = estimate_lag(xm, sm, at, expected, window=win, max_shift=shift) if shift < len(sm) else None
        if r is None and shift >= len(sm):
            seg = xm[at: at + win].astype(np.float32)
            if len(seg) < 64 or len(seg) > len(sm):
                return None
            # the whole source, in float32 (the peak's place is all that is
            # read), with the source's spectrum made once per source
            n = scipy.fft.next_fast_len(len(sm), real=True)
            spec = derived(f"rfft32-{n}", sm, lambda a: scipy.fft.rfft(a.astype(np.float32), n))
            c = scipy.fft.irfft(spec * np.conj(scipy.fft.rfft(seg, n)), n)[: len(sm) - len(seg) + 1]
            return int(np.argmax(c)) - at
        if r is not None and r[1] > 0.5:
            return int(round(r[0]))
    return None


def _fir_fit_error(y: np.ndarray, s: np.ndarray, taps: int, fit: np.ndarray) -> np.ndarray:
    """Squared error per sample of y predicted from s by an FIR (centred,
    ``taps`` long) least-squares fitted on the rows in ``fit``."""
    h = taps // 2
    sp = np.pad(s.astype(np.float64), (h, h))
    m = np.lib.stride_tricks.sliding_window_view(sp, taps)[: len(y)]
    coef, *_ = np.linalg.lstsq(m[fit], y[fit], rcond=None)
    return (y - m @ coef) ** 2


def locate_change(x: np.ndarray, s: np.ndarray, lo: int, hi: int, lag1: int, lag2: int, taps: int = 9,
                  fit_len: int = 2048) -> tuple[int, float]:
    """Frame in [lo, hi) where the lag switches from lag1 to lag2, and how much
    better (dB) the two-piece fit is than the best single lag. The FIR for
    each lag is fitted on the first / last ``fit_len`` frames, the checkpoint
    windows whose lag was measured."""
    lo = max(lo, -min(lag1, lag2), 0)
    hi = min(hi, len(x), len(s) - max(lag1, lag2))
    y = x[lo:hi].astype(np.float64)
    n = len(y)
    if n < 4 * taps:
        return lo, 0.0
    q = max(taps * 4, min(fit_len, n // 4))
    first, last = np.zeros(n, bool), np.zeros(n, bool)
    first[:q], last[n - q:] = True, True
    e1 = _fir_fit_error(y, s[lo + lag1: hi + lag1], taps, first)
    e2 = _fir_fit_error(y, s[lo + lag2: hi + lag2], taps, last)
    c1 = np.concatenate([[0.0], np.cumsum(e1)])
    c2 = np.concatenate([[0.0], np.cumsum(e2)])
    cost = c1 + (c2[-1] - c2)
    k = int(np.argmin(cost))
    single = min(c1[-1], c2[-1])
    return lo + k, float(10 * np.log10((single + _TINY) / (cost[k] + _TINY)))


def _step_db(x: np.ndarray, s: np.ndarray, k: int, pairs: list[tuple[int, int]], *, taps: int = 9,
             half: int = 1024, search: int = 4) -> np.ndarray | None:
    """dB by which each (lag1, lag2) split at frame kk explains x[kk-half:kk+half]
    better than either lag alone, for kk in k-search..k+search: an array
    (len(pairs), 2*search+1), or None near the ends. See step_improvement.

    All pairs and split frames share one set of normal equations: the source
    rows for every lag in play are the columns of one sliding window, and
    their Gram matrices are summed once per block between the frames where a
    window starts, splits or ends, so each (pair, split) costs only 9x9
    sub-blocks and a batched solve."""
    h = taps // 2
    lmin = min(min(p) for p in pairs)
    lmax = max(max(p) for p in pairs)
    lo, hi = k - half - search, k + half + search
    if lo + lmin - h < 0 or hi + lmax + h > len(s) or lo < 0 or hi > len(x):
        return None
    n = hi - lo
    y = x[lo:hi].astype(np.float64)
    sp = s[lo + lmin - h: hi + lmax + h].astype(np.float64)
    rows = np.lib.stride_tricks.sliding_window_view(sp, lmax - lmin + taps)[:n]  # column c: lag lmin + c - t
    span = np.arange(2 * search + 1)
    cuts = np.unique(np.concatenate([span, half + span, 2 * half + span]))
    gram = [np.zeros((rows.shape[1], rows.shape[1]))]
    rhs = [np.zeros(rows.shape[1])]
    energy = [0.0]
    for a, b in zip(cuts[:-1], cuts[1:]):
        r = rows[a:b]
        gram.append(gram[-1] + r.T @ r)
        rhs.append(rhs[-1] + r.T @ y[a:b])
        energy.append(energy[-1] + float(y[a:b] @ y[a:b]))
    G, B, E = np.array(gram), np.array(rhs), np.array(energy)
    at = {int(c): i for i, c in enumerate(cuts)}
    ia = np.array([at[int(v)] for v in span])
    im = np.array([at[int(v)] for v in half + span])
    ib = np.array([at[int(v)] for v in 2 * half + span])
    g_pre, g_post = G[im] - G[ia], G[ib] - G[im]  # (K, W, W)
    b_pre, b_post = B[im] - B[ia], B[ib] - B[im]
    e = E[ib] - E[ia]  # (K,)
    t = np.arange(taps)
    c1 = np.array([l1 - lmin for l1, _ in pairs])[:, None] + t  # (P, taps)
    c2 = np.array([l2 - lmin for _, l2 in pairs])[:, None] + t

    def block(g: np.ndarray, ca: np.ndarray) -> np.ndarray:  # (K, P, taps, taps)
        return g[:, ca[:, :, None], ca[:, None, :]]

    systems = np.stack([block(g_pre, c1) + block(g_post, c1),  # lag1 throughout
                        block(g_pre, c2) + block(g_post, c2),  # lag2 throughout
                        block(g_pre, c1) + block(g_post, c2)])  # the step
    vectors = np.stack([b_pre[:, c1] + b_post[:, c1], b_pre[:, c2] + b_post[:, c2], b_pre[:, c1] + b_post[:, c2]])
    ridge = 1e-12 * (np.trace(systems, axis1=-2, axis2=-1) + _TINY)
    coef = np.linalg.solve(systems + ridge[..., None, None] * np.eye(taps), vectors[..., None])[..., 0]
    err = np.maximum(e[None, :, None] - np.einsum("skpi,skpi->skp", coef, vectors), 0.0)  # (3, K, P)
    floor = e[:, None] * 1e-15 + _TINY
    db = 10 * np.log10((np.minimum(err[0], err[1]) + floor) / (err[2] + floor))
    return db.T  # (P, K)


def step_improvement(x: np.ndarray, s: np.ndarray, k: int, lag1: int, lag2: int, *, taps: int = 9,
                     half: int = 1024, search: int = 4, with_frame: bool = False):
    """dB by which "lag1 before frame k, lag2 from k on, through one shared
    FIR" explains x[k-half:k+half] better than either lag alone (also one
    FIR). A real drop or repeat is a step: the same processing, shifted. A
    processed stream whose phase response drifts (an EQ ramp under a sweep)
    has no step: locally one fractional lag explains it, and forcing a
    whole-sample shift makes the fit worse. k is refined within +-search.
    Least squares by normal equations (9x9): cheap enough to probe every
    boundary."""
    d = _step_db(x, s, k, [(lag1, lag2)], taps=taps, half=half, search=search)
    if d is None:
        return (0.0, k) if with_frame else 0.0
    i = int(np.argmax(d[0]))
    return (float(d[0, i]), k - search + i) if with_frame else float(d[0, i])


_PROBE_SIZES = (1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8)


def _probe_boundary(xm: np.ndarray, sm: np.ndarray, bb: int, *, before: int | None = None, after: int | None = None,
                    min_db: float) -> tuple[int, int, int, float] | None:
    """(frame, lag before, lag after, dB) of a whole-sample step at boundary
    bb, or None. One side's lag is known (``before`` or ``after``); the other
    is tried at every size. Screened at the boundary frame itself on a short
    window, all sizes in one solve; the two best sizes are measured on the
    full window, refined +-4 frames."""
    pairs = [(before, before + d) if before is not None else (after - d, after) for d in _PROBE_SIZES]
    screen = _step_db(xm, sm, bb, pairs, half=256, search=0)
    if screen is None:
        return None
    order = np.argsort(-screen[:, 0], kind="stable")
    if screen[order[0], 0] < min_db - 6.0:
        return None
    top = [pairs[int(i)] for i in order[:2]]
    fine = _step_db(xm, sm, bb, top, half=1024, search=4)
    if fine is None:
        return None
    best = None
    for (l1, l2), row in zip(top, fine):
        i = int(np.argmax(row))
        if row[i] >= min_db and (best is None or row[i] > best[3]):
            best = (bb - 4 + i, l1, l2, float(row[i]))
    return best


def align(x: np.ndarray, source: np.ndarray, sr: int, boundaries: np.ndarray, *, expected_offset: int = 0,
          check_s: float = 3.0, window: int = 2048, max_shift: int = 1024, min_corr: float = 0.6,
          min_improvement_db: float = 12.0, min_step_db: float = 10.0, sure_step_db: float = 25.0,
          probe_step_db: float = 5.0, min_sharpness: float = 5e-5) -> Alignment:
    """Track the lag through the capture (see module docstring)."""
    xm, sm = _mono(x), _mono(source)
    start = coarse_offset(xm, sm, sr, expected_offset)
    al = Alignment(start)
    if start is None:
        return al
    b = np.asarray(boundaries, dtype=np.int64)
    guard = int(0.002 * sr)
    pts = set(np.arange(0, max(0, len(xm) - window), int(check_s * sr)).tolist())
    # and the last window: a change in the stream's last check_s has a
    # checkpoint after it to keep or drop it (_drop_unkept_changes)
    pts.add(len(xm) - window)
    pts.update((b - guard - window).tolist())
    pts.update((b + guard).tolist())
    pts = sorted(p for p in pts if 0 <= p <= len(xm) - window)
    # every boundary is probed directly for a small step: where the content
    # is too dull for a lag to be measured to the sample (a low tone) or the
    # EQ moves the phase on both sides, a 1-sample drop still is a step
    after = {int(v) + guard: int(v) for v in b}
    lag, lag_f = start, float(start)
    al.segments.append((0, start))
    prev_at = 0
    pending: tuple[int, int, float, float] | None = None  # a change waiting for a second opinion
    first_apart: tuple[int, float, float] | None = None  # a first checkpoint far from the coarse offset
    unprobed: list[int] = []
    for p in pts:
        if p in after and pending is None:
            if not al.checkpoints:
                # the lag before it is not known yet (dull opening): probed
                # from the other side once the first sharp checkpoint fixes it
                unprobed.append(after[p])
            else:
                hit = _probe_boundary(xm, sm, after[p], before=lag, min_db=probe_step_db)
                if hit is not None:
                    at, _, l2, db = hit
                    al.segments.append((at, l2))
                    al.scores.append(db)
                    lag_f += l2 - lag
                    lag, prev_at = l2, p
        r = estimate_lag(xm, sm, p, lag, window=window, max_shift=max_shift)
        if r is None or r[1] < min_corr or r[2] < min_sharpness:
            continue
        new_f, corr, _ = r
        if len(al.checkpoints) >= 3 and corr < np.median([c for _, _, c in al.checkpoints]) - 0.01:
            # markedly worse fit than usual here (a transient, a window
            # straddling a join): its lag is not to be trusted to a sample
            continue
        first = not al.checkpoints
        if first and abs(new_f - start) > FIRST_AGREE:
            # the first checkpoint refines the coarse offset (a second of the
            # capture's first loud audio); one far from it fixes the start lag
            # only when the next agrees with it. A window of pre-ringing just
            # before music that starts at a boundary (a zero-phase filter's
            # echo of the onset into digital silence) matched the onset 1008
            # frames on (corr 0.84) and set the whole stream's lag on Auralis
            # (silence-lead, enhanced path): a false spectral step at 25 s
            if first_apart is None or abs(new_f - first_apart[1]) > FIRST_AGREE:
                first_apart = (p, new_f, corr)
                continue
            al.checkpoints.append(first_apart)  # two agree: the coarse offset was off
        al.checkpoints.append((p, new_f, corr))
        new = int(round(new_f))
        if first:
            # the coarse offset is only good to a sample or two on dull
            # content; the first sharp checkpoint fixes the start lag
            lag, lag_f = new, new_f
            al.segments[0] = (0, new)
            al.start_lag = new
            prev_at = p
            continue
        if pending is not None:
            at0, new0, g0, lf0 = pending
            pending = None
            # confirmed when the next checkpoint is nearer the new lag than
            # the old one (EQ phase drift around a smooth join may move it a
            # little further, a sidelobe or a transient sends it back)
            if abs(new_f - (lf0 + new0 - lag)) < abs(new_f - lf0):
                # the next checkpoint sees the same new lag: a real change
                al.segments.append((at0, new0))
                al.scores.append(g0)
                lag, lag_f, prev_at = new0, new_f, p
                continue
            # else a one-checkpoint glitch (a correlation sidelobe): ignore it
        # a whole-sample change only: fractional drift comes from EQ phase
        new = lag + int(round(new_f - lag_f))
        if new != lag and abs(new_f - lag_f) >= 0.75:
            # a real skip makes one lag explain each side far better than
            # either lag explains both, and is a step at one frame under one
            # and the same filter; EQ phase drift is neither. Drift can also
            # ride on a real step (a repeat inside an EQ ramp), so the
            # neighbouring whole-sample sizes are tried as well.
            best = None
            sign = 1 if new > lag else -1
            for cand in sorted({new, new - sign, new + sign} - {lag}, key=lambda c: abs(c - new)):
                if (cand - lag) * sign <= 0:
                    continue
                at, gain_db = locate_change(xm, sm, prev_at, p + window, lag, cand, fit_len=window)
                if gain_db < min_improvement_db:
                    continue
                step_db = step_improvement(xm, sm, at, lag, cand)
                if step_db >= min_step_db and (best is None or step_db > best[3]):
                    best = (at, cand, gain_db, step_db)
            if best is not None and best[3] >= sure_step_db:
                # an unmistakable step needs no second opinion: the next
                # checkpoint may sit in a chunk whose EQ moved the phase back
                al.segments.append((best[0], best[1]))
                al.scores.append(best[2])
                lag, lag_f, prev_at = best[1], new_f, p
                continue
            if best is not None:
                pending = (best[0], best[1], best[2], lag_f)
                prev_at = p
                continue
        lag_f = new_f
        prev_at = p
    if al.checkpoints:
        for bb in reversed(unprobed):  # latest first: each moves the start lag back
            hit = _probe_boundary(xm, sm, bb, after=al.segments[0][1], min_db=probe_step_db)
            if hit is not None:
                at, l1, l2, db = hit
                al.segments[0:1] = [(0, l1), (at, l2)]
                al.scores.insert(0, db)
                al.start_lag = l1
    _drop_unkept_changes(al, window)
    return al


# a lag change this large (frames) is a skip, never the EQ's phase drift (a
# fraction of a frame to a frame or two), so the checkpoints after it must agree
KEPT_CHANGE_MIN = 8


def _drop_unkept_changes(al: Alignment, window: int) -> None:
    """A lag change that the checkpoints after it do not keep is dropped (in
    place). A periodic note's head under a pre-echo (the past replayed,
    fading out) matches the source a fraction of a period away: at 147 Hz a
    200 ms echo's head read 120 frames off, by 25 dB, a sure step, and every
    later checkpoint of the chunk read the old lag again, so the whole rest
    of the stream was aligned 120 frames out and the echo was reported as a
    repeat. A change of at least KEPT_CHANGE_MIN frames stands only if the
    median lag of the checkpoints after it (to the next change) is not
    nearer the previous lag than its own. The checkpoints whose windows
    start within one window of the change are its own evidence, not a
    second opinion: counted with one later checkpoint, the head's 120 and
    the later 0 tied, and an echo in a stream's last 6 s stayed a repeat."""
    k = 1
    while k < len(al.segments):
        at, lag = al.segments[k]
        before = al.segments[k - 1][1]
        end = al.segments[k + 1][0] if k + 1 < len(al.segments) else np.inf
        seen = [f for p, f, _ in al.checkpoints if at + window <= p < end]
        if abs(lag - before) >= KEPT_CHANGE_MIN and seen:
            m = float(np.median(seen))
            if abs(m - before) < abs(m - lag):
                del al.segments[k]
                del al.scores[k - 1]
                continue
        k += 1


def detect_drops_and_repeats(x: np.ndarray, sr: int, boundaries: np.ndarray, alignment: Alignment, *,
                             source: np.ndarray | None = None, boundary_tolerance_s: float = 0.002) -> list[AudioDefect]:
    """One defect per lag change (x, source: mono or (frames, channels)). magnitude: samples dropped/repeated; score:
    how much better the two-piece alignment explains the capture (dB)."""
    out = []
    b = np.asarray(boundaries, dtype=np.int64)
    segs = alignment.segments
    for k, ((s0, l0), (s1, l1)) in enumerate(zip(segs, segs[1:])):
        d = l1 - l0
        score = alignment.scores[k] if k < len(alignment.scores) else 0.0
        bi = None
        if len(b):
            j = int(np.argmin(np.abs(b - s1)))
            if abs(b[j] - s1) <= boundary_tolerance_s * sr:
                bi = j
        out.append(AudioDefect("dropped_samples" if d > 0 else "repeated_samples", s1 / sr, bi, float(abs(d)),
                               "samples", score, 0.0, {"lag_before": l0, "lag_after": l1, "frame": s1}))
    return out


class AlignedSource:
    """The source seen in capture time, without copying it: slices and index
    arrays are in capture frames and come back as source frames (zeros where
    the source has none). Analysis only ever reads windows of it."""

    def __init__(self, source: np.ndarray, n_frames: int, alignment: Alignment, mono: np.ndarray | None = None):
        self.source = source
        self.alignment = alignment
        self.shape = (n_frames, source.shape[1])
        self.dtype = source.dtype
        self._mono_source = mono
        self._whole: np.ndarray | None = None
        self._mono: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _pieces(self, a: int, b: int) -> list[tuple[int, int, int]]:
        """(capture start, capture end, lag) of the constant-lag runs in [a, b)."""
        segs = self.alignment.segments or [(0, int(self.alignment.start_lag or 0))]
        out = []
        for k, (s0, lag) in enumerate(segs):
            s1 = segs[k + 1][0] if k + 1 < len(segs) else self.shape[0]
            lo, hi = max(a, s0), min(b, s1)
            if hi > lo:
                out.append((lo, hi, lag))
        return out

    def _slice(self, src: np.ndarray, a: int, b: int) -> np.ndarray:
        """src (source or its mono) over capture frames [a, b): a view when
        one lag covers it and the source has those frames, else copies."""
        pieces = self._pieces(a, b)
        if len(pieces) == 1:
            lo, hi, lag = pieces[0]
            if lo + lag >= 0 and hi + lag <= len(src):
                return src[lo + lag: hi + lag]
        out = np.zeros((b - a,) + src.shape[1:], dtype=src.dtype)
        for lo, hi, lag in pieces:
            s0, s1 = max(lo + lag, 0), min(hi + lag, len(src))
            if s1 > s0:
                out[s0 - lag - a: s1 - lag - a] = src[s0:s1]
        return out

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        if isinstance(key, slice) and key.step in (None, 1):
            a, b, _ = key.indices(self.shape[0])
            return self._slice(self.source, a, max(a, b))
        if isinstance(key, slice):
            a, b, _ = key.indices(self.shape[0])
            idx = np.arange(a, b)
        else:
            idx = np.asarray(key)
        src = idx + self.alignment.lag_at(idx)
        if src.size and src.min() >= 0 and src.max() < len(self.source):
            return self.source[src]
        ok = (src >= 0) & (src < len(self.source))
        out = self.source[np.clip(src, 0, len(self.source) - 1)]
        if not ok.all():
            out = out.copy()
            out[~ok] = 0
        return out

    def contiguous(self) -> np.ndarray:
        """Whole aligned source (a view when one lag covers it); cached."""
        if self._whole is None:
            self._whole = self._slice(self.source, 0, self.shape[0])
        return self._whole

    def mono(self) -> np.ndarray:
        """The aligned mid signal (from the mono source the alignment used, when given); cached."""
        if self._mono is None:
            ms = self._mono_source if self._mono_source is not None else _mono(self.source)
            self._mono = self._slice(ms, 0, self.shape[0])
        return self._mono

    def start_view(self) -> np.ndarray:
        """The source from the start lag on, as a view (small later lag
        changes ignored): enough for 10 ms level traces."""
        lag = max(0, int(self.alignment.start_lag or 0))
        return self.source[lag: lag + self.shape[0]]


def aligned_source(source: np.ndarray, n_frames: int, alignment: Alignment,
                   mono: np.ndarray | None = None) -> AlignedSource | None:
    if alignment.start_lag is None:
        return None
    return AlignedSource(source, n_frames, alignment, mono)


def far_step_db(x: np.ndarray, s: np.ndarray, k: int, lag1: int, lag2: int, *, taps: int = 9, half: int = 1024,
                search: int = 4) -> tuple[float, int] | None:
    """step_improvement for two lags far apart (tens of ms): the shared-FIR
    design has only the two lags' columns, where _step_db would span every
    lag between them. (dB, refined frame) or None near the ends."""
    h = taps // 2
    lo, hi = k - half - search, k + half + search
    if lo < 0 or hi > len(x) or min(lo + lag1, lo + lag2) - h < 0 or max(hi + lag1, hi + lag2) + h > len(s):
        return None
    y = x[lo:hi].astype(np.float64)

    def rows(lag: int) -> np.ndarray:
        return np.lib.stride_tricks.sliding_window_view(s[lo + lag - h: hi + lag + h].astype(np.float64), taps)[: hi - lo]

    r1, r2 = rows(lag1), rows(lag2)

    def err(m: np.ndarray) -> float:
        coef, *_ = np.linalg.lstsq(m, y, rcond=None)
        e = y - m @ coef
        return float(e @ e)

    single = min(err(r1), err(r2))
    best = None
    for kk in range(2 * search + 1):
        cut = search + half + kk - search
        e = err(np.concatenate([r1[:cut], r2[cut:]]))
        if best is None or e < best[0]:
            best = (e, k - search + kk)
    floor = float(y @ y) * 1e-15 + _TINY
    return 10 * np.log10((single + floor) / (best[0] + floor)), best[1]


def reconcile_with_length(xm: np.ndarray, sm: np.ndarray, boundaries: np.ndarray, al: Alignment, n_capture: int,
                          expected_frames: int | None, *, max_s: float = 0.1, sr: int = 44100,
                          min_db: float = 10.0) -> None:
    """Use the length difference as evidence (in place): a stream that ran
    to the source's end was lengthened by every repeat and shortened by
    every drop, so the lag changes must add up to expected - delivered.
    On periodic content a repeat of a few periods is measured modulo the
    period (a 10 ms repeat of a 147 Hz note looks like a drop of 100-odd
    frames); when one lag change is found and the sum is off, that change
    is the defect and its size is what the length says, if the corrected
    step explains the capture as well (it does, up to the period's
    ambiguity). When none is found, each boundary is probed for a step of
    exactly the missing size; the best one, if it is a step, is taken."""
    if expected_frames is None or al.start_lag is None:
        return
    total = int(expected_frames) - int(n_capture)
    found = al.segments[-1][1] - al.segments[0][1] if al.segments else 0
    miss = total - found
    if miss == 0 or abs(miss) > max_s * sr:
        return
    if len(al.segments) == 2:
        (s0, l0), (s1, l1) = al.segments
        r = far_step_db(xm, sm, s1, l0, l1 + miss)
        was = far_step_db(xm, sm, s1, l0, l1)
        # as well as the step found, to within 1 dB: periodic content leaves
        # the two indistinguishable; anything else keeps what was measured
        if r is not None and r[0] >= min_db and (was is None or r[0] >= was[0] - 1.0):
            al.segments[1] = (r[1], l1 + miss)
            al.scores[0:1] = [r[0]]
        return
    if len(al.segments) == 1:
        l0 = al.segments[0][1]
        best = None
        for bb in np.asarray(boundaries, dtype=np.int64):
            r = far_step_db(xm, sm, int(bb), l0, l0 + miss)
            if r is not None and r[0] >= min_db and (best is None or r[0] > best[1]):
                best = (r[1], r[0])
        if best is not None:
            al.segments.append((best[0], l0 + miss))
            al.scores.append(best[1])
