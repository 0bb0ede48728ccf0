"""Helpers for known-answer tests: realistic clean processing and defect injection."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import sosfilt

SR = 44100


def _shelf_sos(gain_db: float, sr: int, f0: float = 2000.0) -> np.ndarray:
    """RBJ high-shelf biquad (what a mastering EQ band is)."""
    A = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    alpha = np.sin(w0) / 2 * np.sqrt(2)
    cw = np.cos(w0)
    b0 = A * ((A + 1) + (A - 1) * cw + 2 * np.sqrt(A) * alpha)
    b1 = -2 * A * ((A - 1) + (A + 1) * cw)
    b2 = A * ((A + 1) + (A - 1) * cw - 2 * np.sqrt(A) * alpha)
    a0 = (A + 1) - (A - 1) * cw + 2 * np.sqrt(A) * alpha
    a1 = 2 * ((A - 1) - (A + 1) * cw)
    a2 = (A + 1) - (A - 1) * cw - 2 * np.sqrt(A) * alpha
    return np.array([[b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0]])


def per_chunk_master(x: np.ndarray, boundaries: np.ndarray, rng: np.random.Generator, *, sr: int = SR,
                     max_gain_db: float = 1.5, max_eq_db: float = 3.0, join_s: float = 2.0) -> np.ndarray:
    """Each chunk rendered with its own gain and shelf EQ, joined by a linear
    crossfade of ``join_s`` centred on the boundary: the clean control (the
    renderings are of the same source, so the crossfade is smooth)."""
    edges = np.concatenate([[0], np.asarray(boundaries, dtype=np.int64), [len(x)]])
    out = np.zeros_like(x, dtype=np.float64)
    weights = np.zeros(len(x))
    half = int(join_s * sr / 2)
    for k in range(len(edges) - 1):
        g = 10 ** (rng.uniform(-max_gain_db, max_gain_db) / 20)
        lo, hi = max(0, edges[k] - half), min(len(x), edges[k + 1] + half)
        seg = sosfilt(_shelf_sos(rng.uniform(-max_eq_db, max_eq_db), sr), x[max(0, lo - sr):hi], axis=0)[lo - max(0, lo - sr):] * g
        w = np.ones(hi - lo)
        if k > 0:
            w[: 2 * half] = np.linspace(0, 1, 2 * half)
        if k < len(edges) - 2:
            w[-2 * half:] = np.minimum(w[-2 * half:], np.linspace(1, 0, 2 * half))
        out[lo:hi] += seg * w[:, None]
        weights[lo:hi] += w
    return (out / np.maximum(weights, 1e-9)[:, None]).astype(np.float32)


def random_boundaries(n_frames: int, rng: np.random.Generator, *, sr: int = SR, min_gap_s: float = 6.0,
                      max_gap_s: float = 14.0, edge_s: float = 3.0) -> np.ndarray:
    out, t = [], rng.uniform(edge_s + 2, edge_s + 10)
    while t < n_frames / sr - edge_s:
        out.append(int(t * sr) + int(rng.integers(0, sr)) % 1)
        t += rng.uniform(min_gap_s, max_gap_s)
    return np.array(out, dtype=np.int64)


def write_float_wav(path: Path, x: np.ndarray, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="FLOAT")


def write_stream(run_dir: Path, sid: str, x: np.ndarray, chunk_frames: list[tuple[int, int]], *, track_id: int,
                 stream_type: str, ended: str = "completed", start_position: float = 0.0, epoch: int = 1,
                 total_samples: int | None = None, sr: int = SR, frame_split: int = 38400) -> None:
    """A stream directory as the recorder writes it: metas with chunk_index,
    binary events with frame_offset, audio.wav and stream.json.
    chunk_frames: (chunk_index, frames) in order."""
    d = run_dir / "streams" / sid
    d.mkdir(parents=True, exist_ok=True)
    ev = [{"t": 0, "dir": "in", "kind": "audio_stream_start",
           "msg": {"type": "audio_stream_start", "data": {"track_id": track_id, "sample_rate": sr, "channels": 2,
                                                          "stream_type": stream_type, "stream_epoch": epoch,
                                                          "seek_position": start_position}}}]
    off, seq = 0, 0
    for ci, n in chunk_frames:
        done = 0
        while done < n:
            m = min(frame_split, n - done)
            ev.append({"t": 0, "dir": "in", "kind": "audio_chunk_meta",
                       "msg": {"type": "audio_chunk_meta", "data": {"seq": seq, "stream_epoch": epoch, "chunk_index": ci,
                                                                    "frame_count": m, "sample_count": 2 * m}}})
            ev.append({"t": 0, "dir": "in", "kind": "binary", "bytes": 8 * m, "frame_offset": off, "frames": m})
            off += m
            done += m
            seq += 1
    if ended == "completed":
        ev.append({"t": 0, "dir": "in", "kind": "audio_stream_end",
                   "msg": {"type": "audio_stream_end", "data": {"total_samples": total_samples if total_samples is not None else off,
                                                                "reason": "completed"}}})
    (d / "meta.jsonl").write_text("\n".join(json.dumps(e) for e in ev) + "\n")
    write_float_wav(d / "audio.wav", x[:off], sr)
    (d / "stream.json").write_text(json.dumps({"stream_id": sid, "track_id": track_id, "stream_type": stream_type,
                                               "start_position": start_position, "ended": ended, "scenario": "test"}))


def through_chain(src: np.ndarray, seed: int, *, sr: int = SR) -> tuple[np.ndarray, np.ndarray]:
    """(capture, boundaries): ``src`` cut at random boundaries and rendered
    through chain_master, both drawn from one generator seeded ``seed``."""
    rng = np.random.default_rng(seed)
    b = random_boundaries(len(src), rng, sr=sr)
    return chain_master(src, b, rng, sr=sr), b


def chain_master(x: np.ndarray, boundaries: np.ndarray, rng: np.random.Generator, *, sr: int = SR,
                 context_s: float = 5.0, ramp_s: float = 1.0, drift_db: float = 1.0) -> np.ndarray:
    """A per-chunk mastering chain with smooth joins, as Auralis's and the
    reference's (instrument/reference/mastering.py) are: each chunk is
    rendered from ``context_s`` before its start, so every filter and the
    compressor's envelope are warm at the join, with its own parameters
    (gain from its loudness, high/low tilt, compressor threshold) ramped from
    its predecessor's over its first ``ramp_s``; chunks are butt-joined. A
    slow +-``drift_db`` gain drift (period 15-40 s) rides on top, as a
    mastering chain's slow gain changes do. The clean control for dense content."""
    from scipy.signal import butter, lfilter

    x = np.asarray(x, dtype=np.float64)
    edges = np.concatenate([[0], np.asarray(boundaries, dtype=np.int64), [len(x)]])
    hp, lp = butter(1, 2500.0, "highpass", fs=sr), butter(1, 200.0, "lowpass", fs=sr)
    env_a = np.exp(-1.0 / (0.05 * sr))
    gr_a = np.exp(-1.0 / (0.1 * sr))
    params = []
    for k in range(len(edges) - 1):
        seg = x[edges[k]:edges[k + 1]]
        rms_db = 10 * np.log10(np.mean(seg ** 2) + 1e-12)
        params.append((float(np.clip(-0.5 * (rms_db + 20.0), -3, 3) + rng.uniform(-1.0, 1.0)),
                       rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), rms_db + rng.uniform(0.0, 6.0)))
    out = np.zeros_like(x)
    dec = 32  # gains are smooth (>= 50 ms): computed every 32 frames and interpolated
    for k in range(len(edges) - 1):
        lo, hi = edges[k], edges[k + 1]
        c0 = max(0, lo - int(context_s * sr))
        seg = x[c0:hi]
        n = hi - c0
        r = min(hi - lo, int(ramp_s * sr)) if k > 0 else 0
        prev = params[k - 1] if k > 0 else params[k]
        knots = [0, lo - c0, lo - c0 + r, n]  # the predecessor's parameters, ramped into this chunk's

        def ramp(j: int, at: np.ndarray) -> np.ndarray:
            return np.interp(at, knots, [prev[j], prev[j], params[k][j], params[k][j]])

        idx = np.arange(n)
        y = seg + ramp(1, idx)[:, None] * lfilter(*hp, seg, axis=0) + ramp(2, idx)[:, None] * lfilter(*lp, seg, axis=0)
        env = lfilter([1 - env_a], [1, -env_a], np.mean(y ** 2, axis=1))[::dec]
        at = idx[::dec]
        over = np.maximum(10 * np.log10(env + 1e-12) - ramp(3, at), 0.0)
        gr = lfilter([1 - gr_a ** dec], [1, -gr_a ** dec], -0.5 * over)  # 2:1 above threshold, smoothed
        y *= 10 ** (np.interp(idx, at, ramp(0, at) + gr) / 20)[:, None]
        out[lo:hi] = y[lo - c0:]
    t = np.arange(len(x)) / sr
    drift = drift_db * np.sin(2 * np.pi * t / rng.uniform(15.0, 40.0) + rng.uniform(0, 2 * np.pi))
    return (out * (10 ** (drift / 20))[:, None]).astype(np.float32)
