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

run.json and metrics.json follow versioned JSON Schemas (analysis/schemas/):
`read_run` validates run.json instead of guessing at its shape. Every JSON
document of a run is written by `write_json` (atomic: a reader never sees half
a file) through one encoder, `json_default`. Otherwise this module only reads;
writers live with the stage that produces the data.
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


RUNDIR_SCHEMA_VERSION = 1  # run.json "schema_version": the run directory's contract
SCHEMAS = Path(__file__).with_name("schemas")


class RunDirError(ValueError):
    """A run directory file that does not match its schema; one line."""


def json_default(o: Any) -> Any:
    """The one JSON encoder of run-directory documents: numpy scalars and
    arrays as plain numbers and lists, paths as strings, sets sorted; anything
    else by its str() (a stray object must not cost a run its run.json)."""
    if hasattr(o, "item") and getattr(o, "ndim", 0) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=str)
    return str(o)


def dumps(obj: Any, *, indent: int | None = 1) -> str:
    return json.dumps(obj, indent=indent, default=json_default)


def write_json(path: Path, obj: Any, *, indent: int | None = 1) -> Path:
    """Write atomically: a temporary file beside it, then a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(obj, indent=indent), encoding="utf-8")
    os.replace(tmp, path)
    return path


def validate(doc: Any, schema: str, where: Path | str) -> None:
    """Raise RunDirError naming the file, the first violation and where."""
    import jsonschema

    with open(SCHEMAS / f"{schema}.schema.json", encoding="utf-8") as fh:
        spec = json.load(fh)
    errors = sorted(jsonschema.Draft202012Validator(spec).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        at = "/".join(str(p) for p in e.path) or "top level"
        raise RunDirError(f"{where}: {e.message} (at {at}; schema analysis/schemas/{schema}.schema.json)")


def read_run(run_dir: Path) -> dict[str, Any]:
    """run.json, validated. RunDirError when missing, unreadable or of
    another shape (e.g. written by an earshot of another schema version)."""
    path = Path(run_dir) / RUN_JSON
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir} is not a run directory (no run.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: unreadable ({e})") from None
    if isinstance(doc, dict) and doc.get("schema_version") != RUNDIR_SCHEMA_VERSION:
        raise RunDirError(f"{path}: schema_version {doc.get('schema_version')!r}, this earshot reads "
                          f"{RUNDIR_SCHEMA_VERSION} (re-run the scenario)")
    validate(doc, "run", path)
    return doc


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
