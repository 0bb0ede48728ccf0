"""Audio detector sensitivity, false alarms and speed.

    python benchmarks/audio_detection.py            # ~2-3 min: a few hundred cases, 1 h of clean audio
    python benchmarks/audio_detection.py --full     # plus 10 h of clean audio for the false-alarm rate

Every case is a generated signal (analysis.signals) cut at random chunk
boundaries, rendered through a realistic per-chunk gain/EQ with smooth joins
(the clean control), then given one defect of a known size at a random
boundary. A case counts as detected when a defect of the right kind is
reported at that boundary, within 1 ms of where it was injected (crossfade
dips: at that boundary). Clean audio counts every reported defect as a false
alarm.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # "per core" means one thread
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy.signal import sosfilt  # noqa: E402

from analysis import signals  # noqa: E402
from analysis.audio import analyse_capture  # noqa: E402
from tests.audio.synth import _shelf_sos, per_chunk_master, random_boundaries  # noqa: E402

SR = 44100
MS = SR // 1000
CASE_S = 30.0
_POOL: dict[str, np.ndarray] = {}


def pool(name: str) -> np.ndarray:
    """Long renderings to cut excerpts from, so cases differ in content."""
    if name not in _POOL:
        gen = {"sine": signals.sine, "pink": signals.pink_noise_stereo, "sweep": signals.log_sweep,
               "timecode": signals.time_coded, "music": signals.short_track}[name]
        dur = {"sweep": 60.0, "timecode": 150.0}.get(name, 300.0)
        _POOL[name] = gen(duration_s=dur, sr=SR)
    return _POOL[name]


def case(name: str, rng: np.random.Generator, seconds: float = CASE_S):
    src_all = pool(name)
    n = int(seconds * SR)
    start = int(rng.integers(0, len(src_all) - n)) if len(src_all) > n else 0
    src = src_all[start:start + n]
    b = random_boundaries(len(src), rng)
    return src, per_chunk_master(src, b, rng), b


def injected(kind: str, mag: float, name: str, rng: np.random.Generator):
    src, x, b = case(name, rng)
    i = int(rng.integers(len(b)))
    at = int(b[i])
    with_source = True
    if kind == "dropped_samples":
        n = int(mag)
        x = np.delete(x, np.arange(at, at + n), axis=0)
        b = np.where(b > at, b - n, b)
    elif kind == "repeated_samples":
        n = int(mag)
        x = np.insert(x, at, x[at - n:at], axis=0)
        b = np.where(b > at, b + n, b)
    elif kind == "click":
        at = int(at + rng.integers(-MS // 2, MS // 2 + 1))
        x = x.copy()
        x[at, int(rng.integers(2))] += 10 ** (mag / 20) * rng.choice([-1, 1])
        with_source = False
    elif kind == "level_step":
        x = x.copy()
        x[at:] *= np.float32(10 ** (mag * rng.choice([-1, 1]) / 20))
        with_source = name != "sine"
    elif kind == "spectral_step":
        x = x.copy()
        x[at:] = sosfilt(_shelf_sos(mag * rng.choice([-1, 1]), SR, 4000.0), x, axis=0)[at:]
    elif kind == "gap":
        x = x.copy()
        n = int(round(mag * SR / 1000))
        at = int(rng.choice([at, int(rng.integers(2 * SR, len(x) - 2 * SR))]))
        x[at:at + n] = 0
    elif kind == "crossfade_dip":
        other = signals.pink_noise_stereo(CASE_S, SR, seed=int(rng.integers(1000, 10**6)))
        L = int(mag * SR)
        c = int(at + rng.uniform(-0.5, 0.5) * L)
        lo = c - L // 2
        fade = np.linspace(1, 0, L, dtype=np.float32)[:, None]
        x = x.copy()
        x[lo:lo + L] = x[lo:lo + L] * fade + other[lo:lo + L] * (1 - fade)
        x[lo + L:] = other[lo + L:]
        at = c
        with_source = False
    return src, x, b, i, at, with_source


PLAN = [  # detector, signals, magnitudes, unit
    ("dropped_samples", ["sine", "pink", "sweep", "timecode", "music"], [1, 2, 5], "samples"),
    ("repeated_samples", ["sine", "pink", "sweep", "timecode", "music"], [1, 2, 5], "samples"),
    ("click", ["sine", "sweep"], [-75, -70, -65, -60, -50], "dBFS"),
    ("level_step", ["sine", "sweep", "timecode"], [0.25, 0.5, 1.0, 2.0], "dB"),
    ("level_step", ["pink", "music"], [0.5, 1.0, 2.0], "dB"),
    ("spectral_step", ["pink"], [2.0, 4.0, 8.0], "dB shelf"),
    ("gap", ["sine", "pink", "sweep", "music"], [0.5, 1.0, 5.0], "ms"),
    ("crossfade_dip", ["pink"], [0.5, 1.0, 2.0], "s linear fade"),
]


def detection_table(per_cell: int, seed: int) -> list[tuple]:
    rows = []
    rng = np.random.default_rng(seed)
    for kind, names, mags, unit in PLAN:
        for mag in mags:
            hits = total = 0
            for k in range(per_cell):
                name = names[k % len(names)]
                src, x, b, i, at, with_source = injected(kind, mag, name, rng)
                res = analyse_capture(x, SR, b, source=src if with_source else None)
                ok = False
                for d in res.defects:
                    if d.kind != kind:
                        continue
                    if kind == "crossfade_dip":
                        ok |= d.boundary_index == i
                    else:
                        ok |= abs(d.time_s * SR - at) <= MS
                hits += ok
                total += 1
            rows.append((kind, "/".join(names), f"{mag:g} {unit}", hits, total))
    return rows


def false_alarms(hours: float, seed: int) -> tuple[float, int, dict[str, int]]:
    rng = np.random.default_rng(seed)
    names = ["sine", "pink", "sweep", "timecode", "music"]
    seconds, count, by_kind = 0.0, 0, {}
    k = 0
    while seconds < hours * 3600:
        name = names[k % len(names)]
        k += 1
        src, x, b = case(name, rng, seconds=60.0 if name != "sweep" else 59.0)
        # music without its source: a note onset on a boundary is content,
        # which nothing without the source can tell from a defect
        for source in ((src,) if name == "music" else (src, None)):
            res = analyse_capture(x, SR, b, source=source)
            for d in res.defects:
                by_kind[d.kind] = by_kind.get(d.kind, 0) + 1
            count += len(res.defects)
            seconds += len(x) / SR
    return seconds / 3600, count, by_kind


def numpy_stft_baseline(x: np.ndarray) -> None:
    """The yardstick: what a plain numpy look at the stream costs - the mono
    mix, then a 2048-point Hann STFT magnitude with hop 512."""
    mono = x.mean(axis=1)
    frames = np.lib.stride_tricks.sliding_window_view(mono, 2048)[::512]
    np.abs(np.fft.rfft(frames * np.hanning(2048), axis=1))


def speed(seconds_list=(60.0, 600.0), repeats: int = 5) -> list[tuple[float, float, float]]:
    """(stream seconds, x real time, our CPU time / the numpy STFT baseline's):
    both timed side by side, best of ``repeats`` each, so the ratio holds on a
    noisy machine where the absolute figure does not."""
    out = []
    rng = np.random.default_rng(5)
    for secs in seconds_list:
        src = signals.pink_noise_stereo(secs, SR, seed=3)
        b = np.arange(15, secs - 1, 10.0)
        b = (b * SR).astype(np.int64)
        x = per_chunk_master(src, b, rng)
        ours = base = np.inf
        for _ in range(repeats):
            t = time.process_time()
            analyse_capture(x, SR, b, source=src, enhanced=True)
            ours = min(ours, time.process_time() - t)
            t = time.process_time()
            numpy_stft_baseline(x)
            base = min(base, time.process_time() - t)
        out.append((secs, secs / ours, ours / base))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="10 hours of clean audio for the false-alarm rate")
    ap.add_argument("--cases", type=int, default=8, help="cases per detector and magnitude")
    ap.add_argument("--clean-hours", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    t0 = time.time()
    rows = detection_table(args.cases, args.seed)
    print("\n## Detection rate vs defect magnitude (defect at a random boundary of a per-chunk mastered stream)\n")
    print("| detector | signals | magnitude | detected |")
    print("|---|---|---|---|")
    for kind, names, mag, hits, total in rows:
        print(f"| {kind} | {names} | {mag} | {hits}/{total} ({100 * hits / total:.0f}%) |")
    print(f"\n{sum(r[4] for r in rows)} injected cases.")
    hours, count, by_kind = false_alarms(10.0 if args.full else args.clean_hours, args.seed + 1)
    print("\n## False alarms on clean audio (per-chunk gain/EQ, smooth joins; analysed with and without source)\n")
    print(f"{count} false alarm(s) in {hours:.2f} h of clean audio = {count / hours:.2f} per hour"
          + (f"; by kind: {by_kind}" if by_kind else ""))
    print("\n## Analysis speed (one thread, stereo 44.1 kHz, with source, all detectors)\n")
    print("| stream length | x real time (CPU) | cost vs one numpy STFT of the stream |")
    print("|---|---|---|")
    for secs, x, ratio in speed():
        print(f"| {secs:.0f} s | {x:.0f}x | {ratio:.2f}x |")
    print(f"\n(benchmark wall time {time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
