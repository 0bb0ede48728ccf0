"""ws_contract: exercise the /ws protocol once each way a client uses it and
hand every message the server sent, as captured, to the analysis, which
validates it against our contract (ws_contract.json beside this file).

Exercised on one connection: ping, an unknown message type, play_normal to
the end, play_enhanced to the end (shortest track), a seek mid-stream,
pause/resume, stop. The session records into <run>/checks/ws_contract/ (not
the run's own streams/ and load/), so the deliberate error and the stopped
stream never count as the load's failed plays or as audio to analyse."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from analysis.rundir import iter_jsonl
from scenarios.protocol_client import AuralisSession, ClientProfile

CONTRACT_PATH = Path(__file__).with_name("ws_contract.json")
MAX_MESSAGES = 3000  # text messages kept in run.json; a 60 s track is ~70 metas per stream
UNKNOWN_TYPE = "earshot_unknown_type"


def load_contract(path: Path = CONTRACT_PATH) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def ws_contract(*, base_url: str, run_dir: Path, tracks: list[dict[str, Any]], compression: bool,
                target_kind: str = "reference", step_timeout_s: float = 120.0, settle_s: float = 0.5,
                **_: Any) -> dict[str, Any]:
    usable = [t for t in tracks if t.get("track_id") is not None]
    if not usable:
        return {"outcome": "error", "error": "no track with a server id to play"}
    short = min(usable, key=lambda t: t.get("duration_s") or 1e9)
    long_ = max(usable, key=lambda t: t.get("duration_s") or 0)
    cap = Path(run_dir) / "checks" / "ws_contract"
    t0 = time.time()
    s = AuralisSession(base_url, cap, user="ws-contract", scenario="ws-contract-check",
                       tracks={t["track_id"]: t for t in usable}, profile=ClientProfile("browser"),
                       compression=compression)
    steps: list[dict[str, Any]] = []
    stream_step: dict[int, str] = {}  # index in s.streams -> step that started it

    def step(name: str, body: Callable[[], str]) -> None:
        n0 = len(s.streams)
        t = time.time()
        try:
            outcome = body()
        except Exception as e:  # one broken step must not hide the others' messages
            outcome = f"error: {type(e).__name__}: {e}"
        steps.append({"name": name, "t": round(t - t0, 4), "outcome": outcome,
                      "closed": s.closed_reason})
        for i in range(n0, len(s.streams)):
            stream_step[i] = name

    def settle(seconds: float = settle_s) -> str:
        return s.pump(lambda: False, deadline=time.time() + seconds)

    def to_end() -> str:
        return s.pump(s.stream_done, deadline=time.time() + step_timeout_s)

    def first_audio() -> str:
        return s.pump(lambda: s.current is not None and s.current.recorder.frames > 0 or s.stream_done(),
                      deadline=time.time() + step_timeout_s)

    def play(track: dict[str, Any], enhanced: bool) -> Callable[[], str]:
        return lambda: (s.play(track["track_id"], enhanced=enhanced), to_end())[1]

    def to_end_then_settle() -> str:
        # a short stream can end before a command's answer is read; keep
        # reading so the answer lands in this step, not the next
        outcome = to_end()
        settle(min(settle_s, 0.3))
        return outcome

    def seek_mid() -> str:
        s.play(long_["track_id"], enhanced=False)
        first_audio()
        s.seek(long_["track_id"], round((long_.get("duration_s") or 30.0) / 2, 3))
        return to_end_then_settle()

    def pause_resume() -> str:
        s.play(short["track_id"], enhanced=False)
        first_audio()
        s.send("pause")
        settle(0.3)
        s.send("resume")
        return to_end_then_settle()

    def stop() -> str:
        s.play(long_["track_id"], enhanced=False)
        first_audio()
        s.send("stop")
        return settle(1.0)

    res: dict[str, Any] = {"target_kind": target_kind, "unknown_type": UNKNOWN_TYPE,
                           "tracks": {"short": short.get("name"), "long": long_.get("name")}}
    try:
        s.connect()
    except Exception as e:
        return {**res, "outcome": "error", "error": f"connect failed: {type(e).__name__}: {e}"}
    try:
        step("hello", settle)
        step("ping", lambda: (s.send("ping"), settle())[1])
        step("unknown_type", lambda: (s.send(UNKNOWN_TYPE, {}), settle())[1])
        step("play_normal", play(short, False))
        step("play_enhanced", play(short, True))
        step("seek", seek_mid)
        step("pause_resume", pause_resume)
        step("stop", stop)
    finally:
        s.close(reason="check_done")
    res.update(outcome="done", steps=steps, **_read_capture(cap, s, stream_step, t0))
    res["contract"] = load_contract()  # the contract this run was judged against travels with it
    return res


def _read_capture(cap: Path, s: AuralisSession, stream_step: dict[int, str], t0: float) -> dict[str, Any]:
    """Every text message of the connection in arrival order, from the files
    the session wrote, plus one summary per stream."""
    rows: list[tuple[float, str | None, str, Any]] = []  # (t, stream id, dir, message)
    for e in iter_jsonl(cap / "load" / "connections" / f"{s.conn_id}.jsonl"):
        kind = e.get("kind")
        if kind == "sent":
            rows.append((e["t"], None, "out", e.get("msg")))
        elif kind not in ("connected", "closed", "violation", "stale_binary", "binary_without_stream") and \
                isinstance(e.get("msg"), dict):
            rows.append((e["t"], None, "in", e["msg"]))
    streams = []
    for i, st in enumerate(s.streams):
        sid = st.recorder.info["stream_id"]
        d = cap / "streams" / sid
        for e in iter_jsonl(d / "meta.jsonl"):
            if e.get("kind") in ("binary", "violation"):
                continue
            rows.append((e["t"], sid, e.get("dir", "in"), e.get("msg")))
        summ = json.loads((d / "stream.json").read_text()) if (d / "stream.json").exists() else {}
        streams.append({
            "id": sid, "step": stream_step.get(i), "request": summ.get("request") or st.recorder.info.get("request"),
            "start": st.start, "end": summ.get("end"), "ended": summ.get("ended"),
            "delivered_frames": summ.get("delivered_frames", st.recorder.frames),
            "sample_rate": summ.get("sample_rate"), "stream_epoch": st.epoch,
            "violations": [{"kind": v.get("kind"), "detail": v.get("detail")} for v in summ.get("violations") or []],
        })
    rows.sort(key=lambda r: r[0])
    received = [{"t": round(t - t0, 4), "stream": sid, "msg": m} for t, sid, d, m in rows if d == "in"]
    sent, seen = [], set()
    for t, sid, d, m in rows:
        # a play is logged twice (as sent, and again at the head of its stream)
        if d == "out" and (k := (round(t, 4), json.dumps(m, sort_keys=True))) not in seen:
            seen.add(k)
            sent.append({"t": round(t - t0, 4), "msg": m})
    return {"received": received[:MAX_MESSAGES], "received_truncated": max(0, len(received) - MAX_MESSAGES),
            "sent": sent, "streams": streams, "capture_dir": "checks/ws_contract", "connection": s.conn_id}
