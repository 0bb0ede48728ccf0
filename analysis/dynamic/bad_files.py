"""Findings from the `bad_files` check (run.json["checks"]["bad_files"]): a
broken audio file must get a clean error and must not stop the server from
serving others. Pure: raw observations in, Findings out."""
from __future__ import annotations

import json
import re
from typing import Any

from ..grouping import error_text
from ..model import Finding, Location

# what a Python traceback or a server-side source path looks like in a message
TRACE_RE = re.compile(r'Traceback \(most recent call last\)|File "[^"]+\.py", line \d+|\.py:\d+')
SLOW_HEALTH_MS = 2000.0


def _texts(stream: dict[str, Any]) -> list[str]:
    out = []
    for e in stream.get("events") or []:
        if e.get("kind") in ("stream_error", "error", "stream_end"):
            out.append(json.dumps(e.get("data"), ensure_ascii=False))
    if stream.get("play_error"):
        out.append(json.dumps(stream["play_error"], ensure_ascii=False))
    return out


def _ended_cleanly(stream: dict[str, Any]) -> bool:
    kinds = {e.get("kind") for e in stream.get("events") or []}
    return bool(kinds & {"stream_end", "stream_error", "error"}) or bool(stream.get("play_error"))


def analyse(result: dict[str, Any], scenario: str | None) -> list[Finding]:
    if not result or result.get("outcome") not in ("done",):
        return []
    findings: list[Finding] = []
    deadline = result.get("deadline_s")
    for f in result.get("files") or []:
        s = f.get("stream")
        if not s:
            continue
        name, what = f["file"], f.get("what", "")
        loc = Location(scenario=scenario, stream=f"play_normal {name}")
        req = f"play_normal {{track_id: {(f.get('track') or {}).get('id')}}} for {name} ({what})"
        if s.get("outcome") in ("deadline", "idle") and not _ended_cleanly(s):
            started = bool(s.get("started"))
            findings.append(Finding(
                kind="bad_file_stream_hang", title=f"Streaming a broken file hangs: {what.split(':')[0]} ({name})",
                severity="HIGH", dimension="Error Handling",
                description=f"{req}: within {deadline} s the server sent "
                            + ("audio_stream_start and {:.1f} s of audio but no end".format(s.get("delivered_s", 0))
                               if started else "no audio_stream_start, no audio_stream_error and no end")
                            + ": the stream neither finishes nor fails.",
                impact="The player waits forever on a spinner; the server holds the stream's slot and task until "
                       "the client gives up.",
                suggested_fix="Catch decode/read failures of the file and answer audio_stream_error (then end the "
                              "stream); bound every wait on the file.",
                location=loc, evidence=[f"{req} -> events {[e.get('kind') for e in s.get('events') or []]}, "
                                        f"outcome {s.get('outcome')} after {s.get('elapsed_s')} s"],
                figures={"waited_s": float(s.get("elapsed_s") or 0)}, key=name))
        elif s.get("outcome") == "closed" and not _ended_cleanly(s):
            findings.append(Finding(
                kind="bad_file_stream_no_end", title=f"Streaming a broken file drops the connection ({name})",
                severity="MEDIUM", dimension="Error Handling",
                description=f"{req}: the connection closed ({s.get('closed')}) without audio_stream_end or "
                            "audio_stream_error.",
                impact="The client loses its connection and every other state on it for one bad file.",
                suggested_fix="Answer audio_stream_error and keep the connection.",
                location=loc, evidence=[f"{req} -> {s.get('closed')}"], key=name))
        leaks = [t for t in _texts(s) if TRACE_RE.search(t)]
        if leaks:
            findings.append(Finding(
                kind="bad_file_traceback_leak", title=f"The error for a broken file carries a traceback ({name})",
                severity="MEDIUM", dimension="Error Handling",
                description=f"{req}: the error message sent to the client contains a Python traceback or source "
                            "paths.",
                impact="Server internals (paths, code structure) are disclosed to every client; the user sees "
                       "noise instead of a message.",
                suggested_fix="Log the traceback on the server; send a short message and an error code.",
                location=loc, evidence=[f"{req} -> {leaks[0][:400]}"], key=name))
        other = f.get("other_client") or {}
        health = other.get("health") or {}
        good = other.get("good_stream") or {}
        problems = []
        if health.get("error") or (health.get("status") not in (None, 200)):
            problems.append(f"GET /api/health -> {health.get('error') or health.get('status')}")
        elif (health.get("ms") or 0) > SLOW_HEALTH_MS:
            problems.append(f"GET /api/health took {health['ms']:.0f} ms")
        if good and (good.get("outcome") != "done" or (good.get("expected_s") and
                                                        (good.get("delivered_s") or 0) < 0.99 * good["expected_s"])):
            refused = error_text(good.get("play_error"))
            problems.append(f"a normal stream of a good track: outcome {good.get('outcome')}, delivered "
                            f"{good.get('delivered_s')} s of {good.get('expected_s')} s"
                            + (f", refused: {refused}" if refused else ""))
        if problems:
            findings.append(Finding(
                kind="bad_file_starves_others", title=f"While a broken file streams, other clients are not served ({name})",
                severity="HIGH", dimension="Error Handling",
                description=f"During {req}, a second client got: {'; '.join(problems)}.",
                impact="One bad file in one user's library degrades or stops the backend for everyone.",
                suggested_fix="Decode off the event loop with a bound on time; fail the one stream, not the server.",
                location=loc, evidence=problems, key=f"others|{name}",
                # the refusal's text: one cause (the server out of stream slots) is one finding
                sites=[{"error": t} for t in [error_text(good.get("play_error"))] if t]))
    scan = result.get("scan") or {}
    if (scan.get("status") or 0) >= 500 or TRACE_RE.search(str(scan.get("body", ""))):
        findings.append(Finding(
            kind="bad_file_scan_error", title="Scanning a folder with broken files fails or leaks a traceback",
            severity="HIGH" if (scan.get("status") or 0) >= 500 else "MEDIUM", dimension="Error Handling",
            description=f"POST /api/library/scan over {result.get('folder')} answered HTTP {scan.get('status')}.",
            impact="One broken file stops the whole library scan, or discloses server internals.",
            suggested_fix="Record the file as failed and go on; answer without internals.",
            location=Location(scenario=scenario, route="POST /api/library/scan"),
            evidence=[f"HTTP {scan.get('status')}: {str(scan.get('body', ''))[:300]!r}"], key="scan"))
    after = result.get("health_after") or {}
    if after.get("error") or after.get("status") not in (None, 200):
        findings.append(Finding(
            kind="bad_file_server_down", title="The server stops answering after broken files were streamed",
            severity="CRITICAL", dimension="Error Handling",
            description=f"GET /api/health after the check -> {after.get('error') or after.get('status')}.",
            impact="A broken file in a library takes the backend down.",
            suggested_fix="See the target log for the crash; isolate file decoding failures per stream.",
            location=Location(scenario=scenario), evidence=[str(after)], key="server_down"))
    return findings
