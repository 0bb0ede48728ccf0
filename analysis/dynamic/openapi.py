"""Findings from the `openapi` check (run.json["checks"]["openapi"]): answers
that break the target's own declared API contract, each with the request that
produced it. Pure: the check's raw observations in, Findings out."""
from __future__ import annotations

import json
from typing import Any

from ..model import Finding, Location

TRACE_MARKERS = ("Traceback (most recent call last)", '.py", line ')


def _req(r: dict[str, Any]) -> str:
    q = r.get("query") or {}
    if isinstance(q, dict):
        qs = ("?" + "&".join(f"{k}={v}" for k, v in q.items())) if q else ""
    else:  # the check kept a repr: the generated query was not JSON or too long
        qs = f" query {str(q)[:160]}"
    body = r.get("body")
    b = "" if body is None else f" body {json.dumps(body, ensure_ascii=True)[:200] if not isinstance(body, str) else body[:200]}"
    return f"{r.get('method')} {r.get('path')}{qs}{b}"


def _resp(p: dict[str, Any]) -> str:
    resp = p.get("response") or {}
    if not resp:
        return p.get("detail", "")
    return f"HTTP {resp.get('status')} {resp.get('content_type') or ''}: {str(resp.get('body') or '')[:240]!r}"


def _examples(problems: list[dict[str, Any]], n: int = 2) -> list[str]:
    # the shortest requests reproduce most readably
    ps = sorted(problems, key=lambda p: len(_req(p["request"])))[:n]
    return [f"request `{_req(p['request'])}` -> {_resp(p)}" for p in ps]


def _group(problems: list[dict[str, Any]], kind: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for p in problems:
        if p.get("kind") == kind:
            out.setdefault(p["operation"], []).append(p)
    return out


def analyse(result: dict[str, Any], scenario: str | None) -> list[Finding]:
    if not result or result.get("outcome") not in ("done", "budget_exhausted"):
        return []
    problems = result.get("problems") or []
    counts = result.get("problem_counts") or {}
    findings: list[Finding] = []

    def loc(op: str) -> Location:
        return Location(scenario=scenario, route=op)

    for op, ps in _group(problems, "server_error").items():
        leaks = any(m in str((p.get("response") or {}).get("body", "")) for p in ps for m in TRACE_MARKERS)
        n = counts.get(f"server_error|{op}", len(ps))
        findings.append(Finding(
            kind="api_server_error", title=f"{op} answers HTTP 5xx to input its schema allows",
            severity="HIGH" if leaks else "MEDIUM", dimension="Route Handlers",
            description=f"{n} generated request(s) to {op} got a server error: an exception the handler does not "
                        "turn into a 4xx." + (" The body carries a Python traceback." if leaks else ""),
            impact="A client (or a fuzzing page) gets an unexplained failure; the handler's error path is untested.",
            suggested_fix="Validate and bound the parameter (e.g. ids within the database's integer range) and "
                          "answer 4xx with the API's usual error body.",
            location=loc(op), evidence=_examples(ps), figures={"requests": float(n)}, key=op))

    schema = [p for p in problems if p.get("kind") == "schema_violation"]
    by_ref: dict[str, list[dict[str, Any]]] = {}
    for p in schema:
        by_ref.setdefault(p.get("schema_ref") or "?", []).append(p)
    for ref, ps in by_ref.items():
        ops = sorted({p["operation"] for p in ps})
        statuses = sorted({(p.get("response") or {}).get("status") for p in ps} - {None})
        shared = len(ops) > 1
        op_text = ops[0] if not shared else f"{len(ops)} operations"
        findings.append(Finding(
            kind="api_schema_violation",
            title=f"Answers of {op_text} break the declared schema at {ref}",
            severity="MEDIUM", dimension="Schema Consistency",
            description=f"HTTP {', '.join(map(str, statuses))} bodies do not match the response schema the API "
                        f"declares ({ref}): {ps[0].get('validation_message') or ps[0].get('detail', '')[:160]}."
                        + (f" Operations: {', '.join(ops[:12])}{' ...' if len(ops) > 12 else ''}." if shared else ""),
            impact="Generated clients and anyone reading the API docs parse these answers wrongly.",
            suggested_fix="Make the handler return what the schema declares, or declare what it returns "
                          "(for a custom error handler: a matching `responses=` model).",
            location=loc(ops[0] if not shared else ref), evidence=_examples(ps),
            figures={"operations": float(len(ops))}, key=f"{ref}|{ops[0]}" if not shared else ref))

    for op, ps in _group(problems, "content_type").items():
        findings.append(Finding(
            kind="api_undeclared_content_type", title=f"{op} answers a content type its schema does not declare",
            severity="LOW", dimension="Schema Consistency",
            description=f"{ps[0].get('detail', '')[:200]}",
            impact="Clients that trust the declared type fail to parse the answer.",
            suggested_fix="Declare the media type the route returns (response_class / responses=).",
            location=loc(op), evidence=_examples(ps), key=op))

    for op, ps in _group(problems, "non_json_error").items():
        n = counts.get(f"non_json_error|{op}", len(ps))
        findings.append(Finding(
            kind="api_non_json_error", title=f"{op} answers errors with a non-JSON body",
            severity="MEDIUM", dimension="Error Handling",
            description=f"{n} error answer(s) of {op} were not JSON, while the API's errors are JSON objects: "
                        "an exception escaped every handler of the app.",
            impact="Clients that parse the error body crash instead of showing the error.",
            suggested_fix="Catch the exception in the handler or in an app-wide exception handler that answers "
                          "JSON in the API's error shape.",
            location=loc(op), evidence=_examples(ps), figures={"responses": float(n)}, key=op))

    for op, ps in _group(problems, "timeout").items():
        findings.append(Finding(
            kind="api_timeout", title=f"{op} did not answer within {(result.get('settings') or {}).get('timeout_s', 5)} s",
            severity="MEDIUM", dimension="Route Handlers",
            description="A generated request got no answer within the check's timeout.",
            impact="A client waits for an answer that does not come; on a shared event loop others may wait too.",
            suggested_fix="Move slow work off the request path (a background job and a status route) or bound it.",
            location=loc(op), evidence=_examples(ps), key=op))

    conn = [p for p in problems if p.get("kind") == "connection_error"]
    if conn:
        ops = sorted({p["operation"] for p in conn})
        findings.append(Finding(
            kind="api_connection_error", title="The server dropped connections during API requests",
            severity="HIGH", dimension="Route Handlers",
            description=f"{len(conn)} request(s) ended in a connection error ({', '.join(ops[:6])}).",
            impact="The server crashed or stopped accepting connections under ordinary requests.",
            suggested_fix="Find the request in the evidence and the exception in the target's log.",
            location=loc(ops[0]), evidence=_examples(conn), key="connection_error"))

    # one API, one error shape: count the key that carries the message
    shapes = {k: v for k, v in (result.get("error_bodies") or {}).items() if not k.startswith("<not json")}
    if len(shapes) > 1:
        # the usual shape is the one most routes use (not most answers: one
        # route's 404s can outnumber everything else)
        main = max(shapes, key=lambda k: (len(shapes[k]["operations"]), shapes[k]["count"]))
        odd = {k: v for k, v in shapes.items() if k != main}
        ops = sorted({op for v in odd.values() for op in v["operations"]})
        ev = [f"`{k}`: {v['count']} error answer(s), e.g. {_req(v['example']['request'])} -> HTTP "
              f"{v['example']['status']} {v['example']['body'][:160]!r}" for k, v in shapes.items()]
        findings.append(Finding(
            kind="api_inconsistent_error_body",
            title=f"Error bodies use different keys ({', '.join(sorted(shapes))})",
            severity="LOW", dimension="Schema Consistency",
            description=f"Most error answers carry their message in `{main}`; {', '.join(ops[:8])} use "
                        f"{', '.join('`' + k + '`' for k in odd)} instead.",
            impact="A client must know per route where the error message is; generic error display breaks.",
            suggested_fix=f"Answer every error in one shape (here `{main}`), through one exception handler.",
            location=loc(ops[0]), evidence=ev, figures={"shapes": float(len(shapes))},
            key="|".join(sorted(shapes))))
    return findings
