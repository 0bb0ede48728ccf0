"""python -m analysis.audio CAPTURE.wav (--boundaries 15,25,35 | --meta meta.jsonl)
[--source SOURCE.wav] [--source-offset S] [--json OUT.json] [--plots DIR]

Exit 0 when the analysis ran (whatever it found), 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from analysis.rundir import read_float_wav

from .capture import analyse_capture
from .geometry import geometry_from_events, geometry_from_times


class BadInput(Exception):
    pass


def _read_wav(path: str, what: str) -> tuple[np.ndarray, int]:
    try:
        x, sr = read_float_wav(Path(path))
    except Exception as e:  # soundfile raises several types for corrupt files
        raise BadInput(f"cannot read {what} {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    if x.ndim != 2 or not len(x) or sr <= 0:
        raise BadInput(f"{what} {path} holds no audio")
    return np.ascontiguousarray(x, dtype=np.float32), int(sr)


def _read_meta(path: str) -> list[dict]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"cannot read meta {path}: {e}")
    events = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines):  # a torn last line is what a killed writer leaves
                continue
            raise BadInput(f"malformed meta {path}: line {i} is not JSON")
        if not isinstance(ev, dict):
            raise BadInput(f"malformed meta {path}: line {i} is not an object")
        events.append(ev)
    if not any(e.get("kind") == "audio_chunk_meta" for e in events):
        raise BadInput(f"malformed meta {path}: no audio_chunk_meta events")
    return events


def _parse_boundaries(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BadInput(f"--boundaries must be comma-separated seconds, got {text!r}")
    if any(not np.isfinite(v) or v < 0 for v in vals):
        raise BadInput("--boundaries must be non-negative seconds")
    return vals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.audio", description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--boundaries", help="chunk boundaries in seconds, comma-separated")
    g.add_argument("--meta", help="the stream's meta.jsonl (boundaries from chunk_index changes)")
    ap.add_argument("--source", help="the source track (enables alignment and source-relative metrics)")
    ap.add_argument("--source-offset", type=float, default=0.0, help="source second of the capture's first frame")
    ap.add_argument("--enhanced", action="store_true", help="the capture is the enhanced path: check pass-through")
    ap.add_argument("--json", help="write the result as JSON here (default: stdout)")
    ap.add_argument("--plots", help="write one PNG per finding into this folder")
    args = ap.parse_args(argv)
    try:
        x, sr = _read_wav(args.capture, "capture")
        if args.meta:
            geom = geometry_from_events(_read_meta(args.meta), channels=x.shape[1])
            frames = geom.frames()
        else:
            frames = geometry_from_times(_parse_boundaries(args.boundaries), sr, len(x)).frames()
        past = [f / sr for f in frames if f >= len(x) or f <= 0]
        if past:
            raise BadInput(f"boundary at {past[0]:.3f} s is outside the capture ({len(x) / sr:.3f} s)")
        source, offset = None, 0
        if args.source:
            source, ssr = _read_wav(args.source, "source")
            if ssr != sr:
                raise BadInput(f"source is {ssr} Hz but the capture is {sr} Hz")
            offset = int(round(args.source_offset * sr))
        else:
            from analysis import signals

            found = signals.locate_time_code(x, sr)
            if found is not None:  # a time-coded capture carries its own source
                n = found + len(x) + sr
                source = signals.time_coded(duration_s=n / sr, sr=sr)
                offset = found
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res = analyse_capture(x, sr, np.array(frames, dtype=np.int64), source=source, source_offset=offset,
                          enhanced=True if args.enhanced else None)
    doc = res.to_json()
    if args.plots:
        for i, d in enumerate(res.defects):
            from .plots import plot_defect

            plot_defect(x, sr, d.time_s, Path(args.plots) / f"{i:03d}_{d.kind}_{d.time_s:.3f}.png",
                        title=f"{d.kind} {d.magnitude:.2f} {d.unit} score {d.score:.1f}")
    text = json.dumps(doc, indent=1)
    if args.json:
        Path(args.json).write_text(text)
        print(f"{len(res.defects)} finding(s) over {len(frames)} boundaries, {res.duration_s:.1f} s -> {args.json}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
