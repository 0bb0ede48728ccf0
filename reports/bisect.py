"""bisect.md: the answer of `python -m instrument.bisect` first (the first bad
commit and the last good one, with the criterion's evidence at both), then
every tested commit in history order. Renders only; reads bisect.json's doc."""
from __future__ import annotations

from typing import Any

_STATUS = {
    "found": "FOUND",
    "ambiguous": "RANGE (skipped or uncertain commits decide it)",
    "precheck_failed": "NOT BISECTED (pre-check failed)",
    "interrupted": "INTERRUPTED (resumable)",
    "running": "RUNNING",
}


def _cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def _commit(c: dict[str, Any]) -> str:
    return f"`{c['short']}` {c['date'][:10]} {c['subject']}"


def _evidence(lines: list[str]) -> list[str]:
    if not lines:
        return ["(no evidence recorded)", ""]
    return ["```", *[str(x) for x in lines], "```", ""]


def render_bisect_md(doc: dict[str, Any]) -> str:
    r = doc.get("result") or {}
    status = r.get("status", "running")
    out = [
        f"# Bisect: {doc.get('criterion_text')} ({doc.get('repo')}, scenario {doc.get('scenario')})",
        "",
        f"**{_STATUS.get(status, status.upper())}**" + (f": {r['message']}" if r.get("message") else ""),
        "",
        f"- range: good {_commit(doc['good'])} .. bad {_commit(doc['bad'])}: "
        f"{doc.get('commits_in_range')} first-parent commit(s) after good",
        f"- {doc.get('repeat')} run(s) per commit"
        + (f", decided {'by strict majority' if doc.get('rule') == 'majority' else 'only when they agree'}"
           if doc.get("repeat", 1) > 1 else "")
        + f"; {len(doc.get('steps', []))} commit(s) tested, {doc.get('runs_total')} run(s), "
          f"{doc.get('wall_s_total', 0):.0f} s of runs",
    ]
    if doc.get("run_args"):
        out.append(f"- each run: `instrument.run --scenario {doc.get('scenario')} {' '.join(doc['run_args'])}`")
    out.append("")
    if r.get("first_bad"):
        fb, lg = r["first_bad"], r.get("last_good") or {}
        out += ["## First bad commit", "", f"`{fb['commit']}`  ", f"{fb['date']}: {fb['subject']}", "",
                "Evidence at the first bad commit:", "", *_evidence(fb.get("evidence") or [])]
        if lg:
            out += ["## Last good commit", "", f"`{lg['commit']}`  ", f"{lg['date']}: {lg['subject']}", "",
                    "Evidence at the last good commit:", "", *_evidence(lg.get("evidence") or [])]
    elif r.get("candidates") and status in ("ambiguous", "running", "interrupted"):
        lg = r.get("last_good") or {}
        title = "The first bad commit is one of" if status == "ambiguous" else "Still in the range"
        out += [f"## {title}", ""]
        for c in r["candidates"]:
            v = c.get("verdict") or "not tested"
            out.append(f"- {_commit(c)}: {v}" + (f" ({c['reason']})" if c.get("reason") else ""))
        out.append("")
        if lg:
            out += [f"Last good commit: {_commit(lg)}", ""]
    out += ["## Tested commits", "", "| # | commit | date | subject | role | verdict | why | runs | wall s |",
            "|---|---|---|---|---|---|---|---|---|"]
    order = {s["commit"]: i for i, s in enumerate(doc.get("steps", []))}
    for s in doc.get("steps", []):
        runs = "<br>".join(f"`{x['dir']}` {x['verdict']}" for x in s.get("runs", []))
        out.append(f"| {order[s['commit']] + 1} | `{s['short']}` | {s['date'][:10]} | {_cell(s['subject'][:60])} | "
                   f"{s.get('role')} | **{s['verdict']}** | {_cell(s.get('reason'))} | {runs} | "
                   f"{s.get('wall_s', 0):.0f} |")
    out += ["", "Run directories are relative to this file. `skip`: the commit could not be judged (its reason "
            "is the backend's own error); `uncertain`: its repeats disagreed. Both are stepped around as "
            "`git bisect skip` does.", ""]
    return "\n".join(out)
