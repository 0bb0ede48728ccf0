"""What the run analysis's wide searches cost, side by side in one run:

- continuity's +-8 s locate (float32 FFTs in overlap-save blocks of the
  source), alone and per search of a run that shares the track's blocks,
  against the same search with scipy's float64 correlate, as it was;
- the whole-source index search (float32, in overlap-save blocks) against
  a float64 one by one FFT pair of the whole track;
- the position trace of a bit-exact (normal path) capture, whose windows are
  matched exactly, against a processed one, which is searched;
- optionally a run directory's whole analysis, in x real time of its audio.

Ratios, best of N each, because these machines are noisy:

    .venv/bin/python benchmarks/analysis_searches.py [--run-dir RUN] [--repeats 5]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402

from analysis import signals  # noqa: E402
from analysis.audio.position import _SourceIndex, trace_positions  # noqa: E402
from analysis.continuity import SourceBlocks, locate  # noqa: E402
# the search as it was (scipy's float64 correlate): the known-answer tests' reference
from tests.audio.test_float32_searches import _locate_float64 as locate_float64  # noqa: E402

SR = 44100


def best(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def index_float64(sm, seg, n, spec, cs):
    c = scipy.fft.irfft(spec * np.conj(scipy.fft.rfft(seg, n)), n)[: len(sm) - len(seg) + 1]
    e = cs[len(seg):] - cs[: len(cs) - len(seg)]
    return int(np.argmax(c / np.sqrt(float(np.dot(seg, seg)) * np.maximum(e, 1e-12))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--track-s", type=float, default=90.0)
    ap.add_argument("--run-dir", type=Path, default=None, help="also time this run's whole analysis")
    a = ap.parse_args()
    src = signals.pink_noise_stereo(a.track_s, SR)[:, 0].astype(np.float64)
    rng = np.random.default_rng(1)
    at = len(src) // 2
    win = 0.7 * src[at:at + 8192] + 1e-4 * rng.standard_normal(8192)
    t32 = best(lambda: locate(win, src, at + 500, 8 * SR), a.repeats)
    t64 = best(lambda: locate_float64(win, src, at + 500, 8 * SR), a.repeats)
    # a run's searches share the track's blocks: 40 boundaries of streams
    # of one track, each searched +-8 s (spectra made where first reached)
    spots = rng.integers(8 * SR, len(src) - 8 * SR - 8192, 40)
    wins = [0.7 * src[p:p + 8192] + 1e-4 * rng.standard_normal(8192) for p in spots]

    def run_of_searches() -> None:
        blocks = SourceBlocks(src)
        for w, p in zip(wins, spots):
            locate(w, src, int(p) + 500, 8 * SR, blocks)

    shared = best(run_of_searches, a.repeats) / len(spots)
    print(f"continuity locate (+-8 s): one search {t32 * 1e3:.1f} ms, float64 scipy {t64 * 1e3:.1f} ms, "
          f"ratio {t64 / t32:.2f}x; per search of a run sharing the track's blocks {shared * 1e3:.1f} ms, "
          f"ratio {t64 / shared:.2f}x")
    aw = 3 * SR
    index = _SourceIndex(src.astype(np.float32), aw)
    seg = src[at:at + SR]
    n = scipy.fft.next_fast_len(len(src) + aw, real=True)  # one FFT pair of the whole track, as it was
    spec = scipy.fft.rfft(src, n)
    cs = index.cs
    i32 = best(lambda: index._search(seg, ambiguity=0.97, guard=SR // 2), a.repeats)
    i64 = best(lambda: index_float64(src, seg, n, spec, cs), a.repeats)
    print(f"whole-source index search ({a.track_s:.0f} s track): float32 {i32 * 1e3:.1f} ms, float64 {i64 * 1e3:.1f} ms, "
          f"ratio {i64 / i32:.2f}x")
    s32 = src.astype(np.float32)
    start = 10 * SR + 7
    exact = s32[start:start + 30 * SR]
    processed = (0.8 * exact + 1e-4 * rng.standard_normal(len(exact))).astype(np.float32)
    te = best(lambda: trace_positions(exact, s32, SR, expected_lag=start), a.repeats)
    tp = best(lambda: trace_positions(processed, s32, SR, expected_lag=start), a.repeats)
    print(f"position trace of 30 s: bit-exact {te * 1e3:.0f} ms, processed {tp * 1e3:.0f} ms, ratio {tp / te:.2f}x")
    if a.run_dir:
        from analysis.pipeline import analyse_run
        from analysis.rundir import list_streams, read_float_wav

        audio_s = sum(len(read_float_wav(s.dir / "audio.wav")[0]) / SR for s in list_streams(a.run_dir)
                      if (s.dir / "audio.wav").exists())
        t = time.perf_counter()
        analyse_run(a.run_dir)
        dt = time.perf_counter() - t
        print(f"analysis of {a.run_dir.name}: {dt:.1f} s for {audio_s:.0f} s of captured audio, {audio_s / dt:.0f}x real time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
