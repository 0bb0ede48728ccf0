"""Semaphore permits leaked by the target's tasks (agent/permits.jsonl,
instrument/agent/permits.py): a task that took a permit ended without giving
it back. One finding per semaphore, the resource that runs out: it is located
at the line the leaking tasks' exception left the acquiring function at (the
code that skipped the release), the most frequent one; every exit line is
evidence. Pure."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from .dynamic.stream_slots import refusals
from .locate import chain
from .model import Finding, Location
from .rundir import AGENT, iter_jsonl, read_json


def exit_site(rec: dict[str, Any]) -> dict[str, Any] | None:
    """Where the task left the function that acquired the permit (skipping
    the release): its frame's last line as the agent read it, else the exit
    traceback's frame in that function, else the traceback's outermost own
    frame."""
    if rec.get("left_at"):
        return rec["left_at"]
    acquired = rec.get("acquired") or []
    owner = (acquired[-1].get("file"), acquired[-1].get("function")) if acquired else None
    exits = rec.get("exit") or []
    for f in exits:
        if (f.get("file"), f.get("function")) == owner:
            return f
    return exits[0] if exits else None


def analyse_permits(run_dir: Path) -> tuple[list[Finding], dict[str, Any]]:
    run_dir = Path(run_dir)
    run = read_json(run_dir / "run.json", {}) or {}
    leaked: dict[int, list[dict[str, Any]]] = {}
    reclaimed: Counter[int] = Counter()
    for r in iter_jsonl(run_dir / AGENT / "permits.jsonl"):
        sid = r.get("semaphore")
        if r.get("event") == "leaked":
            leaked.setdefault(sid, []).append(r)
        elif r.get("event") == "reclaimed":
            reclaimed[sid] += 1
    findings = []
    total = 0
    for sid, recs in leaked.items():
        permits = sum(int(r.get("permits") or 1) for r in recs) - reclaimed[sid]
        if permits <= 0:  # every one handed back later: a hand-over, not a leak
            continue
        total += permits
        sites = Counter()
        first_at: dict[tuple, dict[str, Any]] = {}
        for r in recs:
            site = exit_site(r) or ((r.get("acquired") or [None])[-1])
            key = (site.get("file"), site.get("line"), site.get("function")) if site else (None, None, None)
            sites[key] += int(r.get("permits") or 1)
            first_at.setdefault(key, r)
        (file, line, function), _ = sites.most_common(1)[0]
        lead = first_at[(file, line, function)]
        capacity = lead.get("capacity")
        created = lead.get("created") or []
        ended = Counter(r.get("ended") for r in recs)
        exhausted = capacity is not None and permits >= capacity
        texts = refusals((run.get("checks") or {}).get("stream_slots") or {})
        ev = [f"{permits} permit(s) of a semaphore of {capacity} kept by {len(recs)} ended task(s) "
              f"({', '.join(f'{n} {how}' for how, n in ended.most_common())}); "
              f"{reclaimed[sid]} handed back later"]
        if created:
            ev.append(f"semaphore created at {chain(created)}")
        ev.append(f"acquired at {chain(lead.get('acquired') or [])}")
        for (f, ln, fn), n in sites.most_common(6):
            r = first_at[(f, ln, fn)]
            how = f"raised {r['exception']}" if r.get("exception") else r.get("ended")
            tb = f": {chain(r['exit'])}" if r.get("exit") else " (the exception was caught by a caller)" \
                if r.get("ended") == "returned" else ""
            ev.append(f"{n} task(s) left {fn} at {f}:{ln} without releasing, and ended ({how}){tb}")
        if texts:
            ev.append(f"the stream_slots check's fresh stream was refused: {texts[0][:200]}")
        findings.append(Finding(
            kind="permit_leak", title=f"Concurrency permits leak when a task ends without releasing ({function})",
            severity="HIGH", dimension="Error Handling",
            description=(f"{permits} of the {capacity} permits of the semaphore acquired in {function} were never "
                         f"released: the tasks holding them ended ({', '.join(sorted(k for k in ended if k))}) "
                         "and the release after the line they left at did not run."
                         + (" Every permit is gone: the server refuses all further work of this kind." if exhausted
                            else "")),
            impact=("Each cancelled stream (a disconnect, a seek, a track switch) permanently takes one slot; once "
                    "they are gone every client is refused ('Server busy') until the backend restarts."),
            suggested_fix=("Release the permit first in the finally (or hold it with `async with`), before any "
                           "await that can raise CancelledError; shield the cleanup awaits."),
            location=Location(file=file, line_start=line, line_end=line, function=function,
                              scenario=run.get("scenario")),
            evidence=ev,
            figures={"permits_leaked": permits, "capacity": capacity if capacity is not None else -1,
                     "tasks": len(recs), "exit_sites": len(sites), "exhausted": int(exhausted)},
            # the resource that runs out: the semaphore, by where it was made
            key="permit_leak|" + (f"{created[-1].get('file')}:{created[-1].get('line')}" if created else
                                  f"{(lead.get('acquired') or [{}])[-1].get('file')}"),
            sites=[{"frame": f"{f}:{ln} {fn}"} for (f, ln, fn) in sites] + [{"error": t} for t in texts],
        ))
    return findings, {"permits_leaked": total}
