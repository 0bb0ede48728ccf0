"""Judge run.json["checks"]["concurrent_writes"]: database integrity after
concurrent writes, scans and streaming; "database is locked" leaking as
5xx; acknowledged writes missing afterwards; streams interrupted while it
ran. Pure."""
from __future__ import annotations

from typing import Any

from ..grouping import error_text
from ..model import Finding, Location

CONTINUITY_SHARE = 0.99  # of the track a stream must deliver


def broken_streams(streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in streams if s.get("outcome") != "completed"
            or (s.get("delivered_s") or 0) < CONTINUITY_SHARE * (s.get("expected_s") or 0)]


def integrity_findings(check: str, result: dict[str, Any], scenario: str | None, when: str) -> list[Finding]:
    out = []
    for i in result.get("integrity") or []:
        if i.get("result") == "ok":
            continue
        out.append(Finding(
            kind="db_integrity_failed", title=f"SQLite database {i['db']} fails its integrity check {when}",
            severity="CRITICAL", dimension="Error Handling",
            description=f"PRAGMA integrity_check on a copy of $HOME/{i['db']} (with its WAL) {when} answered: "
                        f"{i['result'][:300]}",
            impact="A corrupt library database: tracks, playlists and settings lost or unreadable.",
            suggested_fix="Serialise writes through one connection or a write queue, keep transactions short, and "
                          "let SQLite's WAL and busy timeout do the locking; never write the file outside SQLite.",
            location=Location(scenario=scenario, function=f"SQLite database $HOME/{i['db']}"),
            evidence=[f"integrity_check: {i['result'][:300]}", f"WAL at copy time: {i.get('wal_bytes', 0)} bytes"],
            key=f"{check}:integrity:{i['db']}"))
    return out


def analyse(result: dict[str, Any], scenario: str | None) -> tuple[list[Finding], dict[str, float]]:
    if not result or result.get("outcome") != "done":
        return [], {}
    writes = result.get("writes") or {}
    routes = {r["route"]: r for r in result.get("routes") or []}
    findings = integrity_findings("concurrent_writes", result, scenario, "after concurrent writes")
    total = sum(w.get("n", 0) for w in writes.values())
    acked = sum(w.get("acked", 0) for w in writes.values())
    lost_total = sum(r.get("missing_count", 0) for r in (result.get("read_back") or {}).values())
    log = result.get("log_locked") or {}
    metrics = {"concurrent_writes_total": float(total), "concurrent_writes_acked": float(acked),
               "concurrent_writes_lost": float(lost_total)}
    # 5xx that did not happen when the same route was written alone are the concurrency's
    for route, w in sorted(writes.items()):
        n5 = sum(n for s, n in (w.get("by_status") or {}).items() if s.isdigit() and int(s) >= 500)
        if not n5:
            continue
        seq = routes.get(route) or {}
        alone = [x for x in (seq.get("first"), seq.get("second")) if x and (x.get("status") or 0) >= 500]
        if alone and len(alone) == 2:
            continue  # it fails even alone: the openapi check's finding, not a concurrency defect
        locked = w.get("locked_5xx", 0) > 0 or log.get("count", 0) > 0
        findings.append(Finding(
            kind="db_locked_500" if locked else "concurrent_write_500",
            title=(f"{route} answers 500 'database is locked' under concurrent writes" if locked
                   else f"{route} answers 5xx under concurrent writes"),
            severity="HIGH", dimension="Error Handling",
            description=(f"{n5} of {w['n']} writes to {route} failed with a server error while other writes, "
                         f"library scans and a stream ran ({result.get('writers')} writers, "
                         f"{result.get('duration_s'):.0f} s); written alone it succeeded."
                         + (f" The target logged 'database is locked' {log.get('count')} time(s) meanwhile."
                            if log.get("count") else "")),
            impact="Users' edits fail at random when anything else writes (a scan, another tab), and the "
                   "exception escapes as a 500 instead of a retry or a clear error.",
            suggested_fix="Give SQLite a busy timeout and serialise writers (one connection or a write queue); "
                          "catch OperationalError and retry instead of answering 500.",
            location=Location(scenario=scenario, route=route),
            evidence=[f"statuses: {w.get('by_status')}"] + [f"HTTP {e['status']}: {e['excerpt'][:120]}"
                                                             for e in w.get("examples_5xx") or []]
                     + [f"target log: {ln[:200]}" for ln in log.get("lines") or []][:3],
            figures={"server_errors": float(n5), "writes": float(w["n"])},
            key=f"concurrent_5xx:{route}"))
    for route, rb in sorted((result.get("read_back") or {}).items()):
        if not rb.get("missing_count") or rb.get("status") != 200:  # only what was read back can be missing
            continue
        findings.append(Finding(
            kind="lost_acknowledged_writes", title=f"{route} acknowledges writes it then loses",
            severity="CRITICAL", dimension="Route Handlers",
            description=(f"{rb['missing_count']} of {rb['acked']} writes that {route} acknowledged (2xx) under "
                         f"concurrency are missing when read back from {routes.get(route, {}).get('read_back')}; "
                         "written one at a time, both of two writes were kept."),
            impact="Data loss users cannot see: a saved preset, playlist or edit silently disappears when two "
                   "writes meet (a lost update on a read-modify-write).",
            suggested_fix="Make the write one SQL statement or a transaction that holds the write lock from read "
                          "to write; never read-modify-write a shared row outside a transaction.",
            location=Location(scenario=scenario, route=route),
            evidence=[f"missing markers (first {len(rb.get('missing') or [])}): {', '.join(rb.get('missing') or [])}",
                      f"read back with HTTP {rb.get('status')}"],
            figures={"lost": float(rb["missing_count"]), "acknowledged": float(rb["acked"])},
            key=f"lost_writes:{route}"))
    bad = broken_streams(result.get("stream_results") or [])
    if bad:
        findings.append(Finding(
            kind="stream_broken_by_writes", title="Streams break while the database is written",
            severity="HIGH", dimension="Performance",
            description=f"{len(bad)} of {len(result.get('stream_results') or [])} streams played during the "
                        "concurrent writes and scans did not deliver the whole track.",
            impact="Listening stops or skips whenever the library is edited or scanned.",
            suggested_fix="Keep database work off the event loop and out of the streaming path.",
            location=Location(scenario=scenario, route="/ws play_normal"),
            evidence=[f"{s.get('track')}: {s.get('outcome')}, {s.get('delivered_s')} s of {s.get('expected_s')} s, "
                      f"longest gap {s.get('max_gap_s')} s, {s.get('error') or ''}" for s in bad[:4]],
            figures={"streams_broken": float(len(bad))}, key="concurrent_writes:streams",
            # the server's words when it refused a stream ("Server busy"): a stream
            # that got no slot is the slots' defect (grouping folds it under a leak
            # of them), not the writes'
            sites=[{"error": t} for t in dict.fromkeys(error_text(s.get("error")) for s in bad) if t]))
    return findings, metrics
