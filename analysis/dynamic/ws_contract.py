"""Judge run.json["checks"]["ws_contract"]: every message the server sent,
validated against the contract the check recorded (JSON Schema per message
type, documented error codes), and the contract's meanings: end totals that
describe this stream, streams that end with an end message, commands that
are acknowledged. Pure: reads the result dict only."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from ..model import END_TOTALS_CLAUSE, Finding, Location

# Locations are measured, not tabled: each finding names the message type it
# is about and analysis/locate.py names the code the target ran to send it
# (or, for a message never sent, where it read the command).
# a command and the message that must answer it (contract "acks")
ACKS = {"ping": "pong", "pause": "playback_paused", "resume": "playback_resumed", "stop": "playback_stopped",
        "seek": "seek_started"}
UNKNOWN_TYPE_CODE = "unknown_message_type"
# how a stream may end without owing an end message: replaced by a seek/new
# play, or closed by this check itself (the stop step's stream)
ENDED_WITHOUT_END_OK = {"superseded", "check_done", "client_closed"}
ENDED_WITH_END = {"completed", "stopped", "errored"}
DURATION_TOLERANCE_S = 0.01


@dataclass
class Problem:
    """One defect, seen one or more times."""

    kind: str
    msg_type: str
    field: str
    title: str
    severity: str
    dimension: str
    impact: str
    fix: str
    evidence: list[str] = field(default_factory=list)
    count: int = 0
    stream: str | None = None
    figures: dict[str, float] = field(default_factory=dict)

    def add(self, line: str, stream: str | None = None) -> None:
        self.count += 1
        if len(self.evidence) < 6:
            self.evidence.append(line)
        self.stream = self.stream or stream


def _short(obj: Any, limit: int = 300) -> str:
    text = json.dumps(obj, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def build_validators(contract: dict[str, Any]) -> dict[str, Draft202012Validator]:
    """One JSON Schema validator per message type. A "data" entry is the
    payload's schema inside the {type, data} envelope; a "top" entry is the
    whole message (the error envelope, ping, pong)."""
    out = {}
    for t, spec in (contract.get("messages") or {}).items():
        if "top" in spec:
            schema = {"type": "object", **spec["top"]}
        else:
            schema = {"type": "object", "required": ["type", "data"], "additionalProperties": False,
                      "properties": {"type": {"const": t}, "data": {"type": "object", **spec.get("data", {})}}}
        Draft202012Validator.check_schema(schema)
        out[t] = Draft202012Validator(schema)
    return out


def analyse(result: dict[str, Any], scenario: str | None) -> list[Finding]:
    if not result or "skipped" in result or result.get("outcome") != "done" or not result.get("contract"):
        return []
    contract = result["contract"]
    validators = build_validators(contract)
    documented = set(validators) | set(contract.get("other_documented_types") or [])
    problems: dict[str, Problem] = {}

    def problem(key: str, **kw: Any) -> Problem:
        if key not in problems:
            problems[key] = Problem(**kw)
        return problems[key]

    steps = result.get("steps") or []
    step_of = _step_locator(steps)
    for r in result.get("received") or []:
        m, t = r.get("msg"), r.get("t", 0.0)
        where = f"t={t:.3f} s ({step_of(t)})"
        if not isinstance(m, dict):
            continue
        mtype = m.get("type")
        if not isinstance(mtype, str) or mtype not in documented:
            problem(f"type:{mtype}", kind="undocumented_type", msg_type=str(mtype), field="type",
                    title=f"Server sends an undocumented message type '{mtype}'", severity="LOW",
                    dimension="Schema Consistency",
                    impact="Clients built from the documented contract ignore or mishandle it.",
                    fix="Document the message (WEBSOCKET_API.md and the frontend registry) or stop sending it."
                    ).add(f"{where}: {_short(m)}", r.get("stream"))
            continue
        v = validators.get(mtype)
        if v is not None:
            for err in v.iter_errors(m):
                _schema_problem(problem, mtype, err, m, where, r.get("stream"))
        _code_problem(problem, contract, mtype, m, where, r.get("stream"))

    _meaning_problems(problem, result)
    _ack_problems(problem, result)

    findings = []
    for key, p in sorted(problems.items()):
        sent = p.msg_type.split(":")[0]
        sent = "audio_stream_end" if sent == "totals" else sent  # the end totals travel in audio_stream_end
        findings.append(Finding(
            kind=f"ws_contract_{p.kind}", title=p.title, severity=p.severity, dimension=p.dimension,
            description=f"{p.title}: seen {p.count} time(s) while the ws_contract check exercised the protocol "
                        f"(ping, unknown type, play_normal, play_enhanced, seek, pause/resume, stop).",
            impact=p.impact, suggested_fix=p.fix,
            location=Location(route=f"/ws {p.msg_type}", scenario=scenario, stream=p.stream or "ws-contract"),
            evidence=p.evidence,
            # the contract clause, shared with the load's protocol finding on it (analysis/client.py)
            sites=[{"message": sent}] + ([{"contract": key}] if key == END_TOTALS_CLAUSE else []),
            figures={"occurrences": p.count, **p.figures}, key=key,
        ))
    return findings



def _step_locator(steps: list[dict[str, Any]]):
    starts = sorted((s.get("t", 0.0), s.get("name", "?")) for s in steps)

    def locate(t: float) -> str:
        name = "before any step"
        for t0, n in starts:
            if t >= t0:
                name = n
        return f"step {name}"
    return locate


def _schema_problem(problem, mtype: str, err, msg: dict[str, Any], where: str, stream: str | None) -> None:
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "required":
        missing = [f for f in err.validator_value if isinstance(err.instance, dict) and f not in err.instance]
        for f in missing:
            fld = f"{path}.{f}" if path else f
            problem(f"{mtype}:missing:{fld}", kind="missing_field", msg_type=mtype, field=fld,
                    title=f"{mtype} lacks the required field {fld}", severity="MEDIUM",
                    dimension="Schema Consistency",
                    impact="Clients that read the field get undefined and misbehave.",
                    fix=f"Always send {fld} in {mtype}, or change the contract and every client together."
                    ).add(f"{where}: {_short(msg)}", stream)
    elif err.validator == "additionalProperties":
        known = set((err.schema or {}).get("properties") or {})
        extra = sorted(k for k in (err.instance or {}) if k not in known) if isinstance(err.instance, dict) else []
        for f in extra:
            fld = f"{path}.{f}" if path else f
            problem(f"{mtype}:unknown:{fld}", kind="unknown_field", msg_type=mtype, field=fld,
                    title=f"{mtype} carries the undocumented field {fld}", severity="LOW",
                    dimension="Schema Consistency",
                    impact="The documented contract no longer describes the wire; clients may come to depend "
                           "on an accident.",
                    fix=f"Document {fld} or stop sending it."
                    ).add(f"{where}: {fld}={_short(err.instance.get(f), 80)} in {_short(msg)}", stream)
    else:
        fld = path or "(message)"
        problem(f"{mtype}:value:{fld}", kind="wrong_type", msg_type=mtype, field=fld,
                title=f"{mtype}.{fld} does not match the contract ({err.validator})", severity="MEDIUM",
                dimension="Schema Consistency",
                impact="Clients that trust the documented type or range misread the message.",
                fix=f"Send {fld} as the contract says: {_short(err.schema, 120)}."
                ).add(f"{where}: {err.message}; message {_short(msg)}", stream)


def _code_problem(problem, contract: dict[str, Any], mtype: str, m: dict[str, Any], where: str,
                  stream: str | None) -> None:
    if mtype == "error":
        code, allowed = m.get("error"), contract.get("error_codes") or []
    elif mtype == "audio_stream_error":
        code, allowed = (m.get("data") or {}).get("code"), contract.get("stream_error_codes") or []
    else:
        return
    if isinstance(code, str) and code not in allowed:
        problem(f"{mtype}:code:{code}", kind="undocumented_error_code", msg_type=mtype, field=code,
                title=f"{mtype} uses the undocumented error code '{code}'", severity="LOW",
                dimension="Schema Consistency",
                impact="Client recovery logic keyed on the documented codes falls through to a generic path.",
                fix=f"Document '{code}' with its recovery action, or map it to one of: {', '.join(allowed)}."
                ).add(f"{where}: {_short(m)}", stream)


def _meaning_problems(problem, result: dict[str, Any]) -> None:
    for st in result.get("streams") or []:
        end, start = st.get("end"), st.get("start") or {}
        sid, step = st.get("id"), st.get("step")
        delivered = st.get("delivered_frames")
        rate = st.get("sample_rate") or start.get("sample_rate")
        ended = st.get("ended")
        label = f"{sid} ({step}, {start.get('stream_type')}{', seek' if start.get('is_seek') else ''})"
        if isinstance(end, dict) and isinstance(delivered, int):
            total, duration = end.get("total_samples"), end.get("duration")
            bad_total = isinstance(total, (int, float)) and int(total) != delivered
            bad_duration = (isinstance(duration, (int, float)) and rate and
                            abs(float(duration) - delivered / rate) > DURATION_TOLERANCE_S)
            if bad_total or bad_duration:
                path = "seek" if start.get("is_seek") else (start.get("stream_type") or "normal")
                whole = (start.get("total_duration") or 0) * (rate or 0)
                p = problem(END_TOTALS_CLAUSE, kind="wrong_totals", msg_type=f"totals:{path}",
                            field="total_samples",
                            title="audio_stream_end totals do not describe the stream they end", severity="MEDIUM",
                            dimension="WebSocket Streaming",
                            impact="Progress gauges, scrobbling and gapless logic that trust total_samples/duration "
                                   "are wrong whenever a stream did not start at 0 (every seek).",
                            fix="Report the frames actually delivered in this stream (as the stopped/errored "
                                "branches already do), not the whole track.")
                p.add(f"{label}: total_samples={total}, duration={duration} but {delivered} frames "
                      f"({delivered / rate if rate else 0:.3f} s) were delivered in this stream"
                      + (f"; the whole track is {whole:.0f} frames" if whole else ""), sid)
                p.figures.setdefault("declared_frames", float(total or 0))
                p.figures.setdefault("delivered_frames", float(delivered))
        if ended not in ENDED_WITH_END and ended not in ENDED_WITHOUT_END_OK:
            problem(f"stream_end:{ended}", kind="stream_without_end", msg_type="audio_stream_end", field="(missing)",
                    title="A stream stopped without audio_stream_end or audio_stream_error", severity="HIGH",
                    dimension="WebSocket Streaming",
                    impact="The client cannot tell a finished track from a broken stream; players hang at the "
                           "end or skip on.",
                    fix="Send audio_stream_end (or audio_stream_error) on every exit of the stream loop that was "
                        "not caused by the client."
                    ).add(f"{label}: ended '{ended}' after {delivered} frames, no end message", sid)
        for v in st.get("violations") or []:
            if v.get("kind") in ("end_totals_mismatch", "stream_never_ended"):
                continue  # judged above from the raw figures
            problem(f"stream:{v.get('kind')}", kind="stream_violation", msg_type="audio_chunk_meta",
                    field=str(v.get("kind")), title=f"Stream protocol violation: {v.get('kind')}", severity="MEDIUM",
                    dimension="WebSocket Streaming",
                    impact="Clients that check seq/pairing drop or misplace audio.",
                    fix="Keep meta/frame pairs atomic and seq contiguous per stream_epoch."
                    ).add(f"{label}: {v.get('detail')}", sid)


def _ack_problems(problem, result: dict[str, Any]) -> None:
    """Each command the check sent must be answered before the next step."""
    steps = sorted(result.get("steps") or [], key=lambda s: s.get("t", 0.0))
    received = result.get("received") or []
    bounds = [(s.get("t", 0.0), steps[i + 1].get("t", 0.0) if i + 1 < len(steps) else float("inf"))
              for i, s in enumerate(steps)]
    by_step: dict[int, list[dict]] = defaultdict(list)
    for r in received:
        for i, (a, b) in enumerate(bounds):
            if a <= r.get("t", 0.0) < b:
                by_step[i].append(r.get("msg") or {})
    for s_msg in result.get("sent") or []:
        m, t = s_msg.get("msg") or {}, s_msg.get("t", 0.0)
        cmd = m.get("type")
        i = next((i for i, (a, b) in enumerate(bounds) if a <= t < b), None)
        if i is None:
            continue
        later = [x for x in by_step[i]]
        if cmd in ACKS:
            want = ACKS[cmd]
            if not any(x.get("type") == want for x in later):
                problem(f"ack:{cmd}", kind="missing_ack", msg_type=want, field=cmd,
                        title=f"'{cmd}' is not answered with {want}", severity="MEDIUM",
                        dimension="WebSocket Streaming",
                        impact="The client's UI state (paused, stopped, seeking) never confirms; it retries or "
                               "shows the wrong state.",
                        fix=f"Answer every {cmd} with {want}, as the contract documents."
                        ).add(f"step {steps[i].get('name')}: sent {_short(m)}; received types "
                              f"{sorted({str(x.get('type')) for x in later})}")
        elif cmd == (result.get("unknown_type") or "earshot_unknown_type"):
            errs = [x for x in later if x.get("type") == "error"]
            if not any(x.get("error") == UNKNOWN_TYPE_CODE for x in errs):
                problem("ack:unknown_type", kind="missing_ack", msg_type="error", field=UNKNOWN_TYPE_CODE,
                        title="An unknown message type is not answered with error unknown_message_type",
                        severity="LOW", dimension="Schema Consistency",
                        impact="A client (or a newer client version) sending a command the server does not know "
                               "gets no or a misleading answer.",
                        fix="Answer unknown types with {type: error, error: unknown_message_type}."
                        ).add(f"step {steps[i].get('name')}: sent {_short(m)}; got "
                              f"{[_short(x, 160) for x in errs] or 'no error'}")
