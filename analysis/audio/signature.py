"""Named boundary signatures: defects with a known mechanism and shape, so a
report can say what happened instead of listing the clicks, dips and level
steps the mechanism also produces.

* ``pre_echo``: the last part of chunk N-1 replayed, fading out, into the
  head of chunk N (a crossfade that mixes in a tail the client already
  played). Just after the boundary the capture equals itself ``lag`` frames
  earlier; the echo's weight, a level-weighted correlation per 5 ms frame,
  then falls to zero over the fade.
* ``fade_in_dip``: every chunk's head faded in from silence: the level just
  after the boundary falls far below the level just before, then climbs back
  (a V that starts at the boundary, not one centred on it as a crossfade's).

Both metrics are scored against the same metric at non-boundary positions of
the same stream (confirm.confirm), so periodic content, whose every position
matches itself a period earlier, does not look like an echo.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from .alignment import _mono
from .confirm import confirm, reference_positions, windows_at
from .defect import AudioDefect

_TINY = 1e-20
# what a confirmed signature explains at its boundary: the other detectors see
# the same mechanism as a click, a gap, a level or spectral step, a crossfade
# dip or a lag change, and one defect must make one finding
EXPLAINS = ("click", "gap", "level_step", "spectral_step", "crossfade_dip", "dropped_samples", "repeated_samples")


def _lag_misfit(past: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Per row and offset j into ``past``: |h - past[j:j+head]|^2 less |h|^2
    (the same for every j of a row), by one batched FFT correlation. Rows of
    past (P, span) and h (P, head); offsets 0..span-head."""
    span, head = past.shape[1], h.shape[1]
    n = scipy.fft.next_fast_len(span, real=True)  # valid lags never wrap (see alignment.valid_correlation)
    cor = scipy.fft.irfft(scipy.fft.rfft(past, n, axis=1) * np.conj(scipy.fft.rfft(h, n, axis=1)), n,
                          axis=1)[:, : span - head + 1]
    cs = np.zeros((len(past), span + 1))
    np.cumsum(past * past, axis=1, dtype=np.float64, out=cs[:, 1:])
    return cs[:, head:] - cs[:, : cs.shape[1] - head] - 2 * cor


def echo_match_db(xm: np.ndarray, centers: np.ndarray, *, lag_min: int, lag_max: int,
                  head: int) -> tuple[np.ndarray, np.ndarray]:
    """Per centre c: how well xm[c:c+head] is explained by xm[c-L:c-L+head]
    for the best L in [lag_min, lag_max] (dB: head energy over the energy of
    the difference), and that L. All centres in one batched FFT correlation.
    NaN where the window does not fit or the head is silent."""
    c = np.asarray(centers, dtype=np.int64)
    out, lags = np.full(len(c), np.nan), np.zeros(len(c), dtype=np.int64)
    ok = (c - lag_max >= 0) & (c + head <= len(xm))
    if not ok.any():
        return out, lags
    span = lag_max - lag_min + head  # the past the head may have come from
    past = windows_at(xm, c[ok] - lag_max, span).astype(np.float32, copy=False)
    h = windows_at(xm, c[ok], head).astype(np.float32, copy=False)
    # the search in float32 (half the FFT cost); the chosen lag's match is
    # then measured exactly in float64
    j = np.argmin(_lag_misfit(past, h), axis=1)  # e_h is the same for every lag of a row
    h64 = h.astype(np.float64)
    e_h = np.einsum("ij,ij->i", h64, h64)
    P = np.arange(len(j))
    d = h64 - past[P[:, None], j[:, None] + np.arange(head)[None, :]]
    err = np.einsum("ij,ij->i", d, d)
    db = 10 * np.log10((e_h + _TINY) / (err + 1e-9 * e_h + _TINY))
    db[e_h < head * 1e-10] = np.nan
    out[ok], lags[ok] = db, lag_max - j
    return out, lags


# the chain's rendition of the new chunk's audio (own_rendition): the source
# through a FIR, fitted on the capture's last FIT_FRAMES before the boundary
FIT_FRAMES = 4096
FIR_AHEAD, FIR_BEHIND = 4, 28  # taps on later and earlier source frames (a sub-sample shift, an EQ's tail)
RIDGE = 1e-3  # the FIR fit's ridge, relative to the source's mean power per tap


def own_rendition(xm: np.ndarray, sm: np.ndarray, c: int, frames: int) -> np.ndarray | None:
    """The new chunk's own audio from c on (``frames`` of it, fewer at the
    source's end) as the chain renders it: the aligned mono source sm
    through the FIR that best maps it to the capture over the FIT_FRAMES
    before c. Fitted before the boundary and held after it: a chunk's chain
    starts from its predecessor's parameters, and the echo is only after c.
    Neither a scalar weight nor a free filter will do. A scalar cannot
    follow an EQ's phase, and on a pure tone that misfit went into the
    echo's weight: held-out 200 ms echoes read 114 and 243 ms. A filter
    fitted after c would share the pure tone's two dimensions (its sine and
    cosine) with the replayed past, and the echo's weight would not be
    identified. None where too little precedes c."""
    taps = FIR_AHEAD + FIR_BEHIND
    fit = min(FIT_FRAMES, c - FIR_BEHIND + 1)
    n = min(frames, len(sm) - c - FIR_AHEAD, len(xm) - c)
    if fit < 8 * taps or n <= 0:
        return None

    def rows(start: int, m: int) -> np.ndarray:  # row t: sm[start+t-FIR_BEHIND+1 .. start+t+FIR_AHEAD]
        s = np.asarray(sm[start - FIR_BEHIND + 1: start + m + FIR_AHEAD], dtype=np.float64)
        return np.lib.stride_tricks.sliding_window_view(s, taps)[:m]

    X = rows(c - fit, fit)
    G = X.T @ X
    # a ridge: where the fit's source is narrowband (a tone, a sparse
    # track's one note) most taps are free, and a plain least-squares fit
    # gave them weights that amplified the next note's onset by 40 dB
    G[np.diag_indices(taps)] += RIDGE * np.trace(G) / taps + _TINY
    h = np.linalg.solve(G, X.T @ xm[c - fit: c].astype(np.float64))
    return rows(c, n) @ h


def echo_weights(xm: np.ndarray, c: int, lag: int, *, frame: int, frames: int,
                 own: np.ndarray | None = None) -> np.ndarray:
    """Per frame after c: the least-squares weight a with xm[c+t] ~
    a*xm[c-lag+t] (the echo's level-weighted correlation); with the new
    chunk's own audio ``own`` (own_rendition, from c on) the capture is that
    plus the echo's share of the difference, xm - own ~ a*(past - own), so
    the content's own similarity at this lag does not bias a. NaN where the
    past is silent, or (with ``own``) where it is the new audio itself."""
    n = min(frames, (len(xm) - c) // frame)
    if own is not None:
        n = min(n, len(own) // frame)
    y = xm[c: c + n * frame].astype(np.float64).reshape(n, frame)
    p = xm[c - lag: c - lag + n * frame].astype(np.float64).reshape(n, frame)
    pp = np.einsum("ij,ij->i", p, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        if own is None:
            return np.where(pp > frame * 1e-12, np.einsum("ij,ij->i", y, p) / pp, np.nan)
        o = own[: n * frame].reshape(n, frame)
        d, e = y - o, p - o
        ee = np.einsum("ij,ij->i", e, e)
        ok = (pp > frame * 1e-12) & (ee > 1e-3 * pp)
        return np.where(ok, np.einsum("ij,ij->i", d, e) / np.where(ok, ee, 1.0), np.nan)


def _fade_models(w: np.ndarray, frame_s: float, L: float):
    """The two fade shapes of length L on w's frame centres: (name, curve) pairs."""
    t = (np.arange(len(w)) + 0.5) * frame_s
    u = np.clip(t / L, 0.0, 1.0)
    return (("cos2", np.cos(0.5 * np.pi * u) ** 2), ("linear", 1.0 - u))


def _fade_error(w: np.ndarray, frame_s: float, L: float) -> float:
    """The least squared error of a fade of length L (either shape) against the trace w."""
    good = np.isfinite(w)
    return min(float(np.sum((w[good] - m[good]) ** 2)) for _, m in _fade_models(w, frame_s, L))


def _fade_fit(w: np.ndarray, frame_s: float) -> tuple[float, str]:
    """(fade length s, shape) of a weight trace falling from ~1 to ~0: the
    length and shape (equal-power cos^2, or linear) whose curve fits best."""
    good = np.isfinite(w)
    best = (np.inf, 0.0, "cos2")
    for L in np.arange(2, len(w) + 1) * frame_s:
        for shape, model in _fade_models(w, frame_s, L):
            e = float(np.sum((w[good] - model[good]) ** 2))
            if e < best[0]:
                best = (e, float(L), shape)
    return best[1], best[2]


def _echo_trace(xm: np.ndarray, c: int, lag: int, *, frame: int, own: np.ndarray | None,
                frames: int | None = None) -> np.ndarray:
    """The echo's fade per frame after c, over ``frames`` (2.5 lags): its weights
    (echo_weights); without the new chunk's own audio (``own``), relative
    to the content's own similarity at this lag, measured before the
    boundary, which is what the weight tends to once the echo has faded:
    w = fade + (1 - fade) * a0."""
    w = echo_weights(xm, c, lag, frame=frame, frames=frames or max(4, int(2.5 * lag / frame)), own=own)
    before = xm[c - lag: c].astype(np.float64)
    past = xm[c - 2 * lag: c - lag].astype(np.float64)
    a0 = 0.0 if own is not None else float(np.clip((before @ past) / (past @ past + _TINY), -0.9, 0.9))
    return np.clip((np.nan_to_num(w, nan=a0) - a0) / (1.0 - a0), -0.5, 1.5)


def _match_curve(xm: np.ndarray, c: int, *, lag_min: int, lag_max: int, head: int) -> tuple[np.ndarray, np.ndarray]:
    """echo_match_db's match (dB) at every lag in [lag_min, lag_max] for one
    centre, in float64: (lags ascending, dB)."""
    past = xm[c - lag_max: c - lag_min + head].astype(np.float64)[None, :]
    h = xm[c: c + head].astype(np.float64)[None, :]
    e_h = float(h[0] @ h[0])
    err = np.maximum(e_h + _lag_misfit(past, h)[0], 0.0)
    db = 10 * np.log10((e_h + _TINY) / (err + 1e-9 * e_h + _TINY))
    return (lag_max - np.arange(len(db)))[::-1], db[::-1]


def replay_lag(xm: np.ndarray, c: int, lag: int, *, lag_min: int, lag_max: int, head: int, frame: int,
               own: np.ndarray | None, within_db: float = 6.0) -> int:
    """The replayed audio's length at a confirmed echo whose head matches its
    past best at ``lag``. On periodic content the head matches its past as
    well a whole number of periods either side of the replay's length (a
    147 Hz note's 200 ms echo matched best at 16, 180, 227 and 316 ms), and
    the shortest such lag even reads as a repeat. The replay fades out over
    its own length: among the lags that match within ``within_db`` of the
    best (local maxima), the one whose own echo weights a fade of its
    length fits best, each over the same frames (2.5 of the longest lag).
    At the right lag the past is the replayed audio itself; a period either
    side it is the content a period away, and the fit degrades. With the
    new chunk's own audio (``own``) the fit is sample by sample
    (_replay_misfit): on an exactly periodic note a lag a period away has
    the same past, and only the fade's length tells them apart, which 5 ms
    frames resolved a period short or long in 2 of 6 held-out cases. One
    candidate (aperiodic content): ``lag`` itself."""
    lags, db = _match_curve(xm, c, lag_min=lag_min, lag_max=lag_max, head=head)
    peak = np.r_[False, (db[1:-1] >= db[:-2]) & (db[1:-1] >= db[2:]), False]
    cands = lags[peak & (db >= np.max(db) - within_db)]
    cands = cands[(c - 2 * cands >= 0) & (c + cands <= len(xm))]
    if len(cands) < 2:
        return lag
    frames = min(max(4, int(2.5 * cands.max() / frame)), (len(xm) - c) // frame)
    if own is not None and len(own) >= frames * frame:
        errors = [_replay_misfit(xm, c, int(L), own, frames * frame) for L in cands]
    else:
        errors = [_fade_error(_echo_trace(xm, c, int(L), frame=frame, own=own, frames=frames), float(frame),
                              float(L)) for L in cands]
    return int(cands[int(np.argmin(errors))])


def _replay_misfit(xm: np.ndarray, c: int, lag: int, own: np.ndarray, span: int) -> float:
    """How far the ``span`` frames after c are from a replay of the ``lag``
    frames before c fading out over its own length (either shape) over the
    new chunk's own audio, sample by sample: xm = f p + (1 - f) g own, f the
    fade, p the past, g a line in time (the new chunk's chain ramps from its
    predecessor's parameters, which own_rendition holds: a gain the fit
    leaves out biases the fade). Relative residual energy."""
    t = np.arange(span)
    y = xm[c: c + span].astype(np.float64)
    p = xm[c - lag: c - lag + span].astype(np.float64)
    o = own[:span]
    u = t / span
    best = np.inf
    for _, f in _fade_models(t, 1.0, float(lag)):
        a = (1 - f) * o  # the new audio under the fade, and it times the gain line's slope
        best = min(best, float(_two_column_residual(a, a * u, y - f * p)))
    return best / (float(y @ y) + _TINY)


def _two_column_residual(c0: np.ndarray, c1: np.ndarray, y: np.ndarray,
                         q: np.ndarray | None = None) -> np.ndarray:
    """The least-squares residual energy of y on the two columns c0 and c1
    (weights q per sample, or none), along the last axis and broadcast over
    the others (a batch of fade lengths): the 2 x 2 normal equations by hand,
    a column's alone where the two are collinear."""
    qy = y if q is None else q * y
    g00, g01, g11 = ((c0 * c0) @ q, (c0 * c1) @ q, (c1 * c1) @ q) if q is not None else (
        np.sum(c0 * c0, -1), np.sum(c0 * c1, -1), np.sum(c1 * c1, -1))
    b0, b1 = c0 @ qy, c1 @ qy
    det = g00 * g11 - g01 * g01
    ok = det > 1e-12 * (g00 * g11) + _TINY
    with np.errstate(invalid="ignore", divide="ignore"):
        fit = np.where(ok, (g11 * b0 * b0 - 2 * g01 * b0 * b1 + g00 * b1 * b1) / np.where(ok, det, 1.0),
                       b0 * b0 / (g00 + _TINY))
    return qy @ y - fit


def detect_pre_echo(x: np.ndarray, sr: int, boundaries: np.ndarray, *, source=None, x_mono: np.ndarray | None = None,
                    lag_min_s: float = 0.005, lag_max_s: float = 0.5, head_s: float = 0.006,
                    z_min: float = 6.0, excess_min_db: float = 10.0, match_min_db: float = 20.0,
                    n_reference: int = 16, seed: int = 0) -> list[AudioDefect]:
    """Pre-echo at boundaries. magnitude: length of the replayed audio (ms,
    the lag at which the head matches the past); detail: fade length and
    shape, the match in dB.

    A repeat (the past sent again with nothing mixed in) also matches: it is
    told apart half way through the lag, where a repeat still matches the
    past exactly and an echo has half faded under the new chunk's audio.
    With the aligned source, the match the source has at the same lag (a
    tone or a sweep matching itself a period earlier) is subtracted."""
    b = np.asarray(boundaries, dtype=np.int64)
    if not len(b):
        return []
    xm = _mono(x) if x_mono is None else x_mono
    lag_min, lag_max, head = int(lag_min_s * sr), int(lag_max_s * sr), int(head_s * sr)
    # the boundaries first: a signature needs a head matching its past by
    # match_min_db, and on most streams none does, so the references (the
    # bulk of the cost) are searched only when one might be confirmed
    mb, lb = echo_match_db(xm, b, lag_min=lag_min, lag_max=lag_max, head=head)
    if not np.any(mb >= match_min_db):
        return []
    refs = reference_positions(len(xm), b, sr, count=n_reference, guard_s=lag_max_s + 0.25, seed=seed + 7)
    pos = np.concatenate([b, refs])
    mr, lr = echo_match_db(xm, refs, lag_min=lag_min, lag_max=lag_max, head=head)
    m, lags = np.concatenate([mb, mr]), np.concatenate([lb, lr])
    sm = None if source is None else (source.mono() if hasattr(source, "mono") else _mono(np.asarray(source)))
    if sm is not None:
        # the source's own match at the same lag is content (a sweep or a
        # tone matches itself a period earlier): only the excess is an echo
        ok = np.isfinite(m) & (pos - lags >= 0) & (pos + head <= len(sm))
        if ok.any():
            h = windows_at(sm, pos[ok], head).astype(np.float64)
            d = h - windows_at(sm, pos[ok] - lags[ok], head)
            e = np.einsum("ij,ij->i", h, h)
            m[ok] -= np.maximum(10 * np.log10((e + _TINY) / (np.einsum("ij,ij->i", d, d) + 1e-9 * e + _TINY)), 0.0)
    conf = confirm(m[: len(b)], m[len(b):], z_min=z_min, excess_min=excess_min_db, scale_floor=1.0)
    out = []
    frame = int(0.005 * sr)
    for i, cf in enumerate(conf):
        if not (cf.confirmed and cf.metric >= match_min_db):
            continue
        c, lag = int(b[i]), int(lags[i])
        own = None if sm is None else own_rendition(xm, sm, c, int(2.5 * lag_max) + 4 * frame)
        lag = replay_lag(xm, c, lag, lag_min=lag_min, lag_max=lag_max, head=head, frame=frame, own=own)
        # the fade's fit takes what the stream has left after one replay: of
        # the replay's length, not of the head's best match (on a periodic
        # note 0.3 s before the end that was 499 ms, a whole number of
        # periods past the 200 ms replay, and the echo went unnamed)
        if c - 2 * lag < 0 or c + lag > len(xm):
            continue
        half = xm[c + lag // 2 - head // 2: c + lag // 2 + head // 2].astype(np.float64)
        diff = half - xm[c - lag + lag // 2 - head // 2: c - lag + lag // 2 + head // 2]
        if 10 * np.log10((half @ half + _TINY) / (diff @ diff + 1e-9 * (half @ half) + _TINY)) >= match_min_db:
            # still the past, unfaded, half way through: a repeat, not an echo.
            # With a source the alignment measures it; without one this is
            # the only evidence, and the lag is its length
            if sm is None:
                out.append(AudioDefect("repeated_samples", c / sr, i, float(lag), "samples", cf.score,
                                       cf.false_alarm_rate, {"method": "self_match", "match_db": cf.metric,
                                                             "lag_frames": lag, "n_reference": cf.n_reference}))
            continue
        fade_s, shape = _fade_fit(_echo_trace(xm, c, lag, frame=frame, own=own), frame / sr)
        out.append(AudioDefect("pre_echo", c / sr, i, 1000.0 * lag / sr, "ms", cf.score, cf.false_alarm_rate,
                               {"match_db": cf.metric, "lag_frames": lag, "fade_s": round(fade_s, 4),
                                "fade_shape": shape, "n_reference": cf.n_reference}))
    return out


def level_trace(x: np.ndarray, frame: int) -> np.ndarray:
    """Power (summed over channels) per frame, dB (crossfade's batched dot per frame)."""
    from .crossfade import level_trace_db

    return level_trace_db(x, 1, frame)[0]


def _fade_in_shapes(u: np.ndarray):
    """The two fade-in shapes at u = time / length in [0, 1]: (name, amplitude) pairs."""
    return (("sin2", np.sin(0.5 * np.pi * u) ** 2), ("linear", u))


def _fade_in_fit(after_db: np.ndarray, frame_s: float, floor_db: float = -50.0,
                 offset_s: float = 0.0) -> tuple[float, str]:
    """(length s, shape) of a fade-in from a level trace (dB per frame; the
    first frame starts ``offset_s`` after the boundary): the sin^2 or linear
    amplitude fade of length L, times a free level line, that fits the trace
    best in dB. The line is the chain's ramp from its predecessor's gain,
    which moves the content's level by dB over the second after the
    boundary: with only a constant, the late frames' mean set the early
    frames' level and an exactly periodic note's 200 ms fade read 225 ms.
    In dB the deep early frames, where the fade and not the content sets the
    level, weigh most; so each frame's model is its mean power under the
    fade, not the fade's power at its centre (in the first frame of a 200 ms
    sin^2 fade those differ by 5 dB, and lengths read 10-20 ms short)."""
    y = np.nan_to_num(np.maximum(after_db, floor_db), nan=0.0)
    n = len(y)
    sub = 8  # points per frame for its mean power
    t = offset_s + (np.arange(n)[:, None] + (np.arange(sub)[None, :] + 0.5) / sub) * frame_s
    lengths = np.arange(2, n + 1) * frame_s
    tc = t.mean(axis=1) - t.mean()
    best = (np.inf, 0.0, "sin2")
    for shape, amp in _fade_in_shapes(np.clip(t[None, :, :] / lengths[:, None, None], 1e-6, 1.0)):
        model = np.maximum(10 * np.log10(np.mean(amp * amp, axis=2)), floor_db)  # (lengths, frames)
        r = y[None, :] - model
        r -= r.mean(axis=1, keepdims=True)
        err = np.sum(r * r, axis=1) - (r @ tc) ** 2 / (tc @ tc + _TINY)  # what the line leaves
        k = int(np.argmin(err))
        if err[k] < best[0]:
            best = (float(err[k]), float(lengths[k]), shape)
    return best[1], best[2]


def _fade_in_fit_own(xm: np.ndarray, own: np.ndarray, c: int, frame: int, frames: int) -> tuple[float, str]:
    """(length in sample frames, shape) of a fade-in with the new chunk's
    own audio (own, from c on: own_rendition): per frame the capture's
    amplitude against it (<xm, own> / <own, own>), and the sin^2 or linear
    fade of length L times a gain line (the chain's ramp from its
    predecessor's parameters) that fits it best, in amplitude, each frame
    weighted by own's energy in it (a quiet frame's amplitude is noise, a
    silent one's none). A level trace relative to the source's, as
    _fade_in_fit reads without this, moves by dB per 5 ms frame on noise
    (the chain's EQ filters each frame's noise differently): a held-out
    200 ms fade on noise read 165 ms there."""
    n = min(frames, len(own) // frame, (len(xm) - c) // frame)
    y = xm[c: c + n * frame].astype(np.float64).reshape(n, frame)
    o = own[: n * frame].reshape(n, frame)
    oo = np.einsum("ij,ij->i", o, o)
    q = oo / (oo.max() + _TINY)  # the frames' weights
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(q > 0, np.einsum("ij,ij->i", y, o) / np.where(q > 0, oo, 1.0), 0.0)
    t = (np.arange(n) + 0.5) * frame
    lengths = np.arange(2, n + 1) * frame
    u = np.clip(t[None, :] / lengths[:, None], 0.0, 1.0)  # (lengths, frames)
    best = (np.inf, 0.0, "sin2")
    for shape, f in _fade_in_shapes(u):
        err = _two_column_residual(f, f * (t / (n * frame))[None, :], w, q)  # per length: the fade, its gain line
        k = int(np.argmin(err))
        if err[k] < best[0]:
            best = (float(err[k]), float(lengths[k]), shape)
    return best[1], best[2]


def detect_fade_in_dips(x: np.ndarray, sr: int, boundaries: np.ndarray, *, source=None, frame_s: float = 0.005,
                        before_s: float = 0.1, head_s: float = 0.01, z_min: float = 6.0, excess_min_db: float = 10.0,
                        scale_floor_db: float = 0.5, max_len_s: float = 1.0, min_len_s: float = 0.03,
                        n_reference: int = 80, seed: int = 0,
                        x_mono: np.ndarray | None = None) -> list[AudioDefect]:
    """Fade-in dips at boundaries. magnitude: depth in dB (level of the first
    ``head_s`` after the boundary under the level of the ``before_s`` before
    it, positive); detail: the fade's length and shape fitted to the level
    climbing back. With the aligned source, levels are relative to its own,
    and the length is fitted against its rendition (x_mono: the capture's
    mid signal when the caller has it). A fade from silence is deep (>= 10 dB over the references' median) and
    lasts (>= ``min_len_s``); a 5 ms dip at a time-code slot edge is neither."""
    b = np.asarray(boundaries, dtype=np.int64)
    if not len(b):
        return []
    frame = max(1, int(frame_s * sr))
    nb, nh = int(before_s / frame_s), max(1, int(head_s / frame_s))
    # screen: a boundary whose head is not about excess_min_db under the
    # level before it (relative to the source's, when given) cannot be
    # confirmed; the whole-stream traces and the references are computed
    # only when one might be
    lo = b - (nb + 2) * frame
    ok = (lo >= 0) & (b + (nh + 2) * frame <= len(x))
    sv = None
    if source is not None:
        sv = source.start_view() if hasattr(source, "start_view") else source
        ok &= b + (nh + 2) * frame <= len(sv)
    if ok.any():
        depth = []
        for c in b[ok]:
            a, z = c - (nb + 2) * frame - c % frame, c + (nh + 2) * frame
            t = level_trace(x[a:z], frame)
            if sv is not None:
                t = t - level_trace(sv[a:z], frame)
            depth.append(float(np.mean(t[: nb]) - np.min(t[nb + 2: nb + 2 + nh + 1])))
        if max(depth) < excess_min_db - 3.0:  # 3 dB of margin for the frame grid and the references' median
            return []
    tr = absolute = level_trace(x, frame)
    if sv is not None:
        st = level_trace(sv, frame)
        k = min(len(st), len(tr))
        tr = np.where(st[:k] > -90, tr[:k] - st[:k], np.nan)
    nmax = int(max_len_s / frame_s)
    xm, sm = x_mono, None  # the mid signals, made when a confirmed dip needs its rendition
    refs = reference_positions(len(x), b, sr, count=n_reference, guard_s=max_len_s + 0.25, seed=seed + 5)
    pos = np.concatenate([b, refs])
    f0 = -(-pos // frame)  # first whole frame at or after the position
    # the depth needs only the head after the position; the fade's fit takes
    # what the stream has left of max_len_s (a fade-in 0.5 s before the end
    # was left to the gap, level, spectral and crossfade detectors: four
    # findings for one defect)
    ok = (f0 - nb - 1 >= 0) & (f0 + nh + 1 <= len(tr))
    cs = np.concatenate([[0.0], np.cumsum(np.nan_to_num(tr, nan=0.0))])
    bad = np.concatenate([[0], np.cumsum(~np.isfinite(tr))])
    fs = np.clip(f0, nb + 1, len(tr) - nh - 1)
    pre = (cs[fs - 1] - cs[fs - 1 - nb]) / nb  # the frame straddling the position is left out
    hd = (cs[fs + nh] - cs[fs]) / nh
    m = np.where(ok & (bad[fs + nh] - bad[fs - 1 - nb] == 0) & (pre > (-200 if source is not None else -90)),
                 pre - hd, np.nan)
    conf = confirm(m[: len(b)], m[len(b):], z_min=z_min, excess_min=excess_min_db, scale_floor=scale_floor_db)
    out = []
    for i, cf in enumerate(conf):
        if not cf.confirmed:
            continue
        if np.sum(absolute[fs[i]: fs[i] + 4] < -120) >= 2:
            continue  # digital silence: a gap's, not a fade's
        after = tr[fs[i]: fs[i] + nmax] - pre[i]
        if source is not None and sm is None:
            xm = _mono(x) if xm is None else xm
            sm = source.mono() if hasattr(source, "mono") else _mono(np.asarray(source))
        own = None if sm is None else own_rendition(xm, sm, int(b[i]), nmax * frame)
        if own is not None and len(own) >= len(after) * frame and own @ own > 1e-6 * float(
                np.sum(np.square(xm[int(b[i]): int(b[i]) + len(own)], dtype=np.float64))):  # a source is there
            L, shape = _fade_in_fit_own(xm, own, int(b[i]), frame, nmax)
            L /= sr
        else:
            L, shape = _fade_in_fit(after, frame_s, offset_s=(fs[i] * frame - int(b[i])) / sr)
        if L < min_len_s:
            continue  # a few ms: a click's or a gap's shape (the time code's slot ramps), not a fade-in
        rec = after[int(min(len(after) - 1, (L / frame_s) + 0.1 / frame_s)):]
        # a level step down stays at its depth; a dip climbs back to the
        # content's level, which without the source moves by a few dB of its
        # own (a held-out 48 dB fade-in on music-like content came back to
        # 3.2 dB under the level before it)
        if not len(rec) or np.nanmedian(rec) < -max(3.0, 0.25 * cf.metric):
            continue  # never climbs back: a level step down, not a dip
        out.append(AudioDefect("fade_in_dip", float(b[i] / sr), i, cf.metric, "dB", cf.score, cf.false_alarm_rate,
                               {"length_s": round(L, 4), "fade_shape": shape,
                                "n_reference": cf.n_reference, "source_relative": source is not None}))
    return out


def explained_by(signatures: list[AudioDefect], sr: int, defects: list[AudioDefect]) -> list[AudioDefect]:
    """The defects a confirmed signature explains (see EXPLAINS): at its
    boundary, or without one inside its span. Each signature lists them."""
    gone = []
    for d in defects:
        if d.kind not in EXPLAINS:
            continue
        for s in signatures:
            span = (s.detail.get("fade_s") or s.detail.get("length_s") or 0.2) + 0.06
            if d.boundary_index == s.boundary_index or (
                    d.boundary_index is None and -0.005 <= d.time_s - s.time_s <= span):
                s.detail.setdefault("explains", []).append(d.kind)
                gone.append(d)
                break
    return gone
