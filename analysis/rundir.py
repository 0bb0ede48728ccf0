"""The run directory: the contract between stages, and pure readers for it.

Everything a run observed is written here as it happens and flushed, so a
crash loses nothing and every later stage can be re-run on an old directory::

    run.json              what ran: target, versions, options, timings, status, verdict
    target.log            the backend's stdout/stderr
    tracks.json           the test tracks: name, file (relative), track_id, duration_s, ...
    agent/*.jsonl         in-process events (loop stalls with stacks, lag, tasks, tracemalloc)
    agent/agent.json      what the agent saw at start (loop implementation, versions, pid)
    samples.jsonl         out-of-process samples: t, rss, uss, cpu_percent, threads, fds
    load/                 Locust CSV/HTML; requests.jsonl (raw REST timings); events.jsonl
    streams/<id>/         one captured audio stream:
        meta.jsonl        every message of the stream, one JSON object a line:
                          {"t": unix time received/sent, "dir": "in"|"out", "kind": type,
                           "msg": {...}} and for binary frames
                          {"t":..., "dir": "in", "kind": "binary", "bytes": n,
                           "frame_offset": frames already in audio.wav, "frames": m}
        audio.wav         IEEE float32, interleaved, written as frames arrive
        stream.json       summary written when the stream closes (absent if the client died)
    findings.json         analysis result (schema in analysis.model)
    metrics.json          flat {figure name: number} the gate reads
    report.md ...         renderings

This module only reads; writers live with the stage that produces the data.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

RUN_JSON = "run.json"
TRACKS_JSON = "tracks.json"
SAMPLES = "samples.jsonl"
FINDINGS = "findings.json"
METRICS = "metrics.json"
STREAMS = "streams"
AGENT = "agent"
LOAD = "load"


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return default


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSON Lines file, skipping a torn last line (a
    writer killed mid-line) instead of failing the whole analysis."""
    try:
        fh = open(path, "r", encoding="utf-8")
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def read_float_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a capture as float32 (frames, channels).

    Captures are written incrementally; if the writer died before patching the
    header, the data chunk size is wrong. We trust the file size instead, which
    is what a crash leaves behind. Non-capture WAVs go through soundfile.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(64)
    if len(head) >= 44 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        fmt_tag, channels, rate = struct.unpack("<HHI", head[20:28])
        bits = struct.unpack("<H", head[34:36])[0]
        if fmt_tag == 3 and bits == 32 and head[36:40] == b"data":
            raw = np.fromfile(path, dtype="<f4", offset=44)
            usable = (raw.size // channels) * channels
            return raw[:usable].reshape(-1, channels), rate
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data, rate


@dataclass
class Stream:
    """One captured stream as analysis sees it."""

    id: str
    dir: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def start(self) -> dict[str, Any] | None:
        for e in self.events:
            if e.get("kind") == "audio_stream_start":
                return e.get("msg", {}).get("data", e.get("msg", {}))
        return None

    @property
    def end(self) -> dict[str, Any] | None:
        for e in self.events:
            if e.get("kind") == "audio_stream_end":
                return e.get("msg", {}).get("data", e.get("msg", {}))
        return None

    def chunk_metas(self) -> list[dict[str, Any]]:
        """audio_chunk_meta messages paired with where their frame landed in
        audio.wav (`frame_offset`, in sample frames)."""
        out: list[dict[str, Any]] = []
        pending: dict[str, Any] | None = None
        for e in self.events:
            kind = e.get("kind")
            if kind == "audio_chunk_meta":
                m = dict(e.get("msg", {}).get("data", e.get("msg", {})))
                m["t"] = e.get("t")
                if "frame_offset" in e:
                    m["frame_offset"] = e["frame_offset"]
                out.append(m)
                pending = m
            elif kind == "binary" and pending is not None:
                # the recorder writes the meta before its frame arrives; the
                # frame's line says where the audio landed
                pending.setdefault("frame_offset", e.get("frame_offset"))
                pending["frames"] = e.get("frames")
                pending["t_frame"] = e.get("t")
                pending = None
        return out

    def audio(self) -> tuple[np.ndarray, int]:
        return read_float_wav(self.dir / "audio.wav")


def list_streams(run_dir: Path) -> list[Stream]:
    root = Path(run_dir) / STREAMS
    if not root.is_dir():
        return []
    streams = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        streams.append(
            Stream(
                id=d.name,
                dir=d,
                events=list(iter_jsonl(d / "meta.jsonl")),
                summary=read_json(d / "stream.json", {}) or {},
            )
        )
    return streams


def relpath(path: Path | str, run_dir: Path | str) -> str:
    try:
        return os.path.relpath(str(path), str(run_dir))
    except ValueError:
        return str(path)
