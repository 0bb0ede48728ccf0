"""The `openapi` check: drive the target's REST API from its own OpenAPI spec
with property-based requests (schemathesis over Hypothesis) and record every
answer that breaks the declared contract: 5xx, bodies outside the declared
schema or content type, non-JSON error bodies, and which key each error body
uses. Raw observations only; analysis.dynamic.openapi judges them.

Bounded so it fits after the load: a fixed number of examples per operation,
a fixed seed (the same requests every run), a total time budget, and no
operation that would wreck the run for the checks after it (see SKIP_*)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import requests

# Auralis serves its spec only in dev mode, at /api/openapi.json; FastAPI's
# default place comes second
SPEC_PATHS = ("/api/openapi.json", "/openapi.json")
SEED = 20261124
EXAMPLES_PER_OPERATION = 4  # positive examples; NEGATIVE_EXAMPLES more of invalid input
NEGATIVE_EXAMPLES = 2
BUDGET_S = 20.0
REQUEST_TIMEOUT_S = 5.0
MAX_EXAMPLES_PER_PROBLEM = 3  # per (kind, operation): enough to reproduce, not a flood
BODY_EXCERPT = 400

# Deletes of any kind, and non-GET operations whose path names one of these,
# change what the later checks and the run stand on: the library and its
# files (scan of arbitrary paths, reset, metadata written into the files),
# global settings and enhancement state, caches, heavy background jobs, and
# anything that reaches outside the machine (artwork download).
SKIP_METHODS = frozenset({"DELETE"})
SKIP_WORDS = ("reset", "scan", "upload", "clear", "delete", "download", "settings", "metadata", "enhancement",
              "process", "fit", "build", "enqueue", "refresh", "shutdown", "restart", "import", "export")
# Only the API: a dev-mode landing page or the SPA is not part of the contract
PATH_PREFIX = "/api"
# Path parameters filled with ids that exist, so the success path (where
# response schemas matter) is reached, not only 404s
ID_PARAMS = ("track_id", "track_id1", "track_id2", "album_id", "artist_id", "playlist_id", "id")


# schemathesis failure classes -> the kinds this check records
FAILURE_KINDS = {"ServerError": "server_error", "ContentTypeServerError": "server_error",
                 "JsonSchemaError": "schema_violation", "MalformedJson": "schema_violation",
                 "DiscriminatorMismatch": "schema_violation", "ContentDeserializationError": "schema_violation",
                 "UndefinedContentType": "content_type", "MalformedMediaType": "content_type",
                 "MissingContentType": "content_type"}


class _OutOfTime(Exception):
    pass


def skip_reason(method: str, path: str) -> str | None:
    m = method.upper()
    if not path.startswith(PATH_PREFIX):
        return f"outside {PATH_PREFIX}"
    if m in SKIP_METHODS:
        return f"{m} is destructive to the run"
    if m not in ("GET", "HEAD", "OPTIONS"):
        low = path.lower()
        word = next((w for w in SKIP_WORDS if w in low), None)
        if word:
            return f"state-changing ({word})"
    return None


def fetch_spec(base_url: str) -> tuple[str | None, dict[str, Any] | None, list[dict[str, Any]]]:
    tried = []
    for p in SPEC_PATHS:
        try:
            r = requests.get(base_url + p, timeout=10)
        except requests.RequestException as e:
            tried.append({"path": p, "error": f"{type(e).__name__}: {e}"})
            continue
        tried.append({"path": p, "status": r.status_code})
        if r.status_code == 200:
            try:
                doc = r.json()
            except ValueError:
                continue
            if isinstance(doc, dict) and "paths" in doc:
                return p, doc, tried
    return None, None, tried


def openapi(*, base_url: str, tracks: list[dict[str, Any]] | None = None, budget_s: float = BUDGET_S,
            examples: int = EXAMPLES_PER_OPERATION, negative_examples: int = NEGATIVE_EXAMPLES, seed: int = SEED,
            **_: Any) -> dict[str, Any]:
    t0 = time.monotonic()
    fetch_start = time.time()
    spec_path, spec, tried = fetch_spec(base_url)
    # when: FastAPI builds the spec on the loop at its first request (331 ms
    # on Auralis), a stall this tool's own request caused (analysis.loop)
    res: dict[str, Any] = {"settings": {"examples_per_operation": examples, "negative_examples": negative_examples,
                                        "budget_s": budget_s, "seed": seed, "timeout_s": REQUEST_TIMEOUT_S},
                           "spec_tried": tried, "spec_fetch": {"t_start": fetch_start, "t_end": time.time()}}
    if spec is None:
        res.update(outcome="no_spec")
        return res
    res.update(spec_path=spec_path, spec_title=(spec.get("info") or {}).get("title"),
               spec_version=spec.get("openapi"))

    import schemathesis  # imported here: heavy, and only this check needs it
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.result import Ok

    schema = schemathesis.openapi.from_dict(spec)
    ops, invalid = [], []
    for r in schema.get_all_operations():
        if isinstance(r, Ok):
            ops.append(r.ok())
        else:  # an operation the spec describes badly: itself an observation
            invalid.append(str(r.err())[:300])
    exercised, skipped = [], []
    for op in ops:
        why = skip_reason(op.method, op.path)
        (skipped if why else exercised).append((op, why))
    known_id = next((t["track_id"] for t in (tracks or []) if t.get("track_id") is not None), 1)
    rec = _Recorder()
    deadline = t0 + budget_s
    passes = [("known_ids", GenerationMode.POSITIVE, 1), ("positive", GenerationMode.POSITIVE, examples),
              ("negative", GenerationMode.NEGATIVE, negative_examples)]
    reached: dict[str, list[str]] = {}
    out_of_time = False
    session = requests.Session()
    for name, mode, n in passes:
        if out_of_time or n <= 0:
            break
        for op, _why in exercised:
            label = f"{op.method.upper()} {op.path}"
            fixed = {p: known_id for p in _path_params(op) if p in ID_PARAMS}
            if name == "known_ids" and not fixed:
                continue
            if time.monotonic() >= deadline:
                out_of_time = True
                break
            try:
                _run_operation(op, mode, n, seed, fixed if name == "known_ids" else None, base_url, session,
                               rec, deadline, name)
            except _OutOfTime:
                out_of_time = True
                break
            except Unsatisfiable:
                pass  # no invalid input exists for an operation without parameters: nothing to send
            except Exception as e:  # generation failed for this operation: note it, go on
                rec.generation_errors.append({"operation": label, "pass": name,
                                              "error": f"{type(e).__name__}: {str(e)[:300]}"})
            reached.setdefault(label, []).append(name)
    session.close()
    res.update(
        outcome="done" if not out_of_time else "budget_exhausted",
        operations_total=len(ops), invalid_operations=invalid,
        skipped_operations=[{"operation": f"{op.method.upper()} {op.path}", "why": why} for op, why in skipped],
        reached={k: v for k, v in sorted(reached.items())},
        not_reached=sorted(f"{op.method.upper()} {op.path}" for op, _ in exercised
                           if f"{op.method.upper()} {op.path}" not in reached),
        requests=rec.requests, status_counts=rec.status_counts, problems=rec.problems,
        problem_counts=rec.problem_counts, error_bodies=rec.error_bodies, generation_errors=rec.generation_errors,
        elapsed_s=round(time.monotonic() - t0, 2),
    )
    return res


def _path_params(op: Any) -> list[str]:
    return re.findall(r"{([^}]+)}", op.path)


def _run_operation(op: Any, mode: Any, n: int, seed: int, fixed: dict[str, Any] | None, base_url: str,
                   session: requests.Session, rec: "_Recorder", deadline: float, pass_name: str) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

    strategy = op.as_strategy(mode, path_parameters=fixed) if fixed else op.as_strategy(mode)
    label = f"{op.method.upper()} {op.path}"

    # no shrinking, no example database: a problem is recorded, never raised,
    # so Hypothesis simply runs n fresh examples
    @hseed(seed)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(case=strategy)
    def probe(case: Any) -> None:
        if time.monotonic() >= deadline:
            raise _OutOfTime()
        if label in rec.timed_out:
            return  # one timeout is the observation; more would only eat the budget
        req = _request_of(case)
        t = time.monotonic()
        try:
            resp = case.call(base_url=base_url, session=session, timeout=REQUEST_TIMEOUT_S)
        except requests.Timeout:
            rec.timed_out.add(label)
            rec.problem("timeout", label, req, None, f"no answer within {REQUEST_TIMEOUT_S:g} s", pass_name)
            return
        except requests.RequestException as e:
            rec.problem("connection_error", label, req, None, f"{type(e).__name__}: {str(e)[:200]}", pass_name)
            return
        elapsed = time.monotonic() - t
        rec.response(label, req, resp, elapsed, pass_name)
        try:
            case.validate_response(resp, checks=[not_a_server_error, response_schema_conformance,
                                                 content_type_conformance])
        except FailureGroup as g:
            for f in g.exceptions:
                kind = FAILURE_KINDS.get(type(f).__name__, "check_failed")
                if kind == "server_error":
                    continue  # recorded from the status itself, once, in rec.response
                message = str(getattr(f, "message", f))
                extra = {}
                if kind == "schema_violation":
                    # where in the declared schema the answer broke it: the same
                    # break on many routes is one defect (a shared error model)
                    ref = re.search(r"Schema at (\S+)", message)
                    extra = {"schema_ref": ref.group(1).rstrip(":") if ref else None,
                             "instance_path": [str(x) for x in getattr(f, "instance_path", [])],
                             "validation_message": str(getattr(f, "_raw_message", ""))[:300]}
                rec.problem(kind, label, req, resp, f"{getattr(f, 'title', '')}: {message[:500]}", pass_name, **extra)
        except Exception as e:  # a check that cannot run on this answer
            rec.problem("check_failed", label, req, resp, f"{type(e).__name__}: {str(e)[:300]}", pass_name)

    probe()


def _jsonable(v: Any, limit: int = 600) -> Any:
    """A generated value as JSON, or its repr when it is not JSON or too long
    to keep (fuzzed bodies can be kilobytes of nested noise)."""
    try:
        text = json.dumps(v)
    except (TypeError, ValueError):
        return repr(v)[:limit]
    return v if len(text) <= limit else repr(v)[:limit] + "..."


def _request_of(case: Any) -> dict[str, Any]:
    from schemathesis.core import NOT_SET

    body = getattr(case, "body", NOT_SET)
    return {"method": case.method.upper(), "path": case.formatted_path,
            "query": _jsonable(dict(case.query or {})),
            "headers": _jsonable(dict(case.headers or {})) if case.headers else None,
            "body": None if body is NOT_SET else _jsonable(body),
            "media_type": getattr(case, "media_type", None)}


def _content_type(resp: Any) -> str:
    # schemathesis keeps every header as a list of its values
    v = resp.headers.get("content-type") or resp.headers.get("Content-Type") or ""
    return (v[0] if v else "") if isinstance(v, list) else str(v)


def _excerpt(resp: Any) -> str:
    try:
        text = resp.text
    except Exception:
        text = repr(resp.content[:BODY_EXCERPT])
    return text[:BODY_EXCERPT]


def error_key(body: Any) -> str:
    """Which conventional key carries an error body's message: the keys a
    client must look for, so two of them in one API is an inconsistency."""
    if not isinstance(body, dict):
        return f"<json {type(body).__name__}>"
    for k in ("detail", "error", "message", "errors", "msg"):
        if k in body:
            return k
    return "<other: " + ",".join(sorted(body)[:5]) + ">"


class _Recorder:
    def __init__(self) -> None:
        self.requests = 0
        self.status_counts: dict[str, dict[str, int]] = {}
        self.problems: list[dict[str, Any]] = []
        self.problem_counts: dict[str, int] = {}
        self.error_bodies: dict[str, dict[str, Any]] = {}
        self.generation_errors: list[dict[str, Any]] = []
        self.timed_out: set[str] = set()

    def response(self, label: str, req: dict[str, Any], resp: Any, elapsed: float, pass_name: str) -> None:
        self.requests += 1
        by = self.status_counts.setdefault(label, {})
        by[str(resp.status_code)] = by.get(str(resp.status_code), 0) + 1
        if resp.status_code >= 500:
            self.problem("server_error", label, req, resp, f"HTTP {resp.status_code}", pass_name)
        if resp.status_code < 400:
            return
        ctype = _content_type(resp)
        try:
            body = json.loads(resp.text) if "json" in ctype else None
        except ValueError:
            body = None
        if body is None:
            key = "<not json>"
            self.problem("non_json_error", label, req, resp, f"HTTP {resp.status_code} with content-type {ctype!r}",
                         pass_name)
        else:
            key = error_key(body)
        slot = self.error_bodies.setdefault(key, {"count": 0, "operations": {}, "example": None})
        slot["count"] += 1
        slot["operations"][label] = slot["operations"].get(label, 0) + 1
        if slot["example"] is None:
            slot["example"] = {"operation": label, "request": req, "status": resp.status_code,
                               "body": _excerpt(resp)}

    def problem(self, kind: str, label: str, req: dict[str, Any], resp: Any, detail: str, pass_name: str,
                **extra: Any) -> None:
        k = f"{kind}|{label}"
        self.problem_counts[k] = self.problem_counts.get(k, 0) + 1
        if self.problem_counts[k] > MAX_EXAMPLES_PER_PROBLEM:
            return
        self.problems.append({
            "kind": kind, "operation": label, "pass": pass_name, "request": req, "detail": detail, **extra,
            "response": None if resp is None else {"status": resp.status_code,
                                                   "content_type": _content_type(resp),
                                                   "body": _excerpt(resp)},
        })


def main() -> None:  # python -m instrument.dynamic.openapi_check BASE_URL: a look at one target
    import sys

    print(json.dumps(openapi(base_url=sys.argv[1].rstrip("/"), run_dir=Path(".")), indent=1))


if __name__ == "__main__":
    main()
