"""Measured code locations for findings that name only where a defect was
observed (an HTTP route, a WebSocket message type, an audio stream).

Read from what the agent recorded in the running target (never from a table
of the target's file names):
- agent/routes.json: each route's endpoint function, file and first line, so
  a finding on "GET /api/x/{id}" names that endpoint's def;
- agent/ws_sites.jsonl: where the target sent each WebSocket message type
  ("binary": the audio frames) and where it read messages, with its own
  frames on the stack, so a WebSocket finding names the code that sent the
  message it is about, and an audio finding the code that sent the chunks.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from .model import Finding, Location
from .rundir import AGENT, iter_jsonl, read_json

# findings about the audio a stream carried: named by the code that sent its frames
AUDIO_KINDS = ("click", "dropped_samples", "repeated_samples", "level_step", "spectral_step", "gap",
               "crossfade_dip", "passthrough", "clipping", "length_mismatch", "sample_rate_or_channels",
               "repeated_audio", "missing_audio")


def load_routes(run_dir: Path) -> list[dict[str, Any]]:
    return read_json(Path(run_dir) / AGENT / "routes.json", []) or []


def load_ws_sites(run_dir: Path) -> dict[tuple[str, str], list[list[dict[str, Any]]]]:
    """(kind, message type) -> the own-frame stacks of every call site, in the order first seen."""
    out: dict[tuple[str, str], list[list[dict[str, Any]]]] = defaultdict(list)
    for r in iter_jsonl(Path(run_dir) / AGENT / "ws_sites.jsonl"):
        if r.get("frames"):
            out[(str(r.get("kind")), str(r.get("type")))].append(r["frames"])
    return out


def _segments(path: str) -> list[str]:
    return [s for s in path.strip("/").split("/") if s]


def match_route(routes: list[dict[str, Any]], method: str, path: str) -> dict[str, Any] | None:
    """The route serving METHOD PATH; `{param}` segments match anything."""
    want = _segments(path)
    best = None
    for r in routes:
        if method and r.get("methods") and method not in r["methods"]:
            continue
        have = _segments(str(r.get("path") or ""))
        if len(have) != len(want):
            continue
        score = 0
        for h, w in zip(have, want):
            if h == w:
                score += 2
            elif h.startswith("{") or w.startswith("{"):
                score += 1
            else:
                break
        else:
            if best is None or score > best[0]:
                best = (score, r)
    return best[1] if best else None


def _route_of(f: Finding) -> tuple[str, str] | None:
    route = (f.location.route or "").strip()
    if not route or route.startswith("/ws"):
        return None
    method, _, path = route.partition(" ")
    if not path:
        return None
    return method.upper(), path.split("?")[0]


def _types_by_frame(sites: dict[tuple[str, str], list[list[dict[str, Any]]]]) -> dict[tuple[str, str], set[str]]:
    """(file, function) -> every message type sent with that frame on the stack."""
    types: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (kind, mtype), stacks in sites.items():
        if kind != "send":
            continue
        for frames in stacks:
            for fr in frames:
                types[(fr.get("file"), fr.get("function"))].add(mtype)
    return types


def _specific(frames: list[dict[str, Any]], types: dict[tuple[str, str], set[str]]) -> list[dict[str, Any]]:
    """The stack cut at its frame most specific to this message: the innermost
    of those that send the fewest message types (a `safe_send` every message
    goes through, or a connection loop, says nothing about any one of them)."""
    if not frames:
        return frames
    width = [len(types.get((f.get("file"), f.get("function")), ())) or 1 for f in frames]
    best = max(i for i, w in enumerate(width) if w == min(width))
    return frames[: best + 1]


def _from_frames(frames: list[dict[str, Any]], loc: Location) -> Location:
    inner = frames[-1]
    return Location(file=inner.get("file"), line_start=inner.get("line"), line_end=inner.get("line"),
                    function=inner.get("function"), scenario=loc.scenario, stream=loc.stream,
                    time_s=loc.time_s, route=loc.route)


def chain(frames: list[dict[str, Any]]) -> str:
    return " <- ".join(f"{f.get('file')}:{f.get('line')} {f.get('function')}" for f in reversed(frames))


def locate_findings(findings: list[Finding], run_dir: Path) -> list[Finding]:
    routes = load_routes(run_dir)
    sites = load_ws_sites(run_dir)
    types = _types_by_frame(sites)
    for f in findings:
        if f.location.has_code:
            continue
        where = None
        how = ""
        rt = _route_of(f)
        msg = next((s.get("message") for s in f.sites if s.get("message")), None)
        read = next((s.get("read") for s in f.sites if s.get("read")), None)
        if rt and routes:
            r = match_route(routes, *rt)
            if r and r.get("file"):
                f.location = Location(file=r["file"], line_start=r.get("line"), line_end=r.get("line"),
                                      function=r.get("function"), scenario=f.location.scenario,
                                      route=f.location.route, stream=f.location.stream)
                f.evidence.append(f"location: the endpoint of {rt[0]} {r.get('path')} in the app's route table "
                                  f"as it ran ({r.get('endpoint')})")
            continue
        if read and not msg:
            where = sites.get(("receive", "message")) or []
            how = f"where the target read the {read!r} message (its handler loop)"
        elif msg:
            stacks = sites.get(("send", msg)) or []
            how = f"where the target sent its {msg!r} messages"
            if not stacks:
                stacks = sites.get(("receive", "message")) or []
                how = f"no {msg!r} was sent; where the target read the message that got no reply"
            where = stacks
        elif f.kind in AUDIO_KINDS:
            where = sites.get(("send", "binary")) or []
            how = "where the target sent the stream's audio frames (first frame of each call site)"
        if where:
            where = [_specific(w, types) for w in where]
            f.location = _from_frames(where[0], f.location)
            f.evidence.append(f"location: {how}, measured in the running target: {chain(where[0])}"
                              + (f" (and {len(where) - 1} other call site(s))" if len(where) > 1 else ""))
    return findings
