"""stream_slots: do the server's stream slots come back when streams are cancelled?

A server that caps concurrent streams (Auralis: a semaphore of
MAX_CONCURRENT_STREAMS, 10) must give a stream's slot back however the stream
ends. The common way a stream ends in real use is a cancel: the listener closes
the tab, seeks, or switches track while a chunk is in flight. This check
cancels streams that way, one client at a time, so at most one of ours is
ever live:
- before: a fresh client's play. Refused: the slots are gone already (the
  load's cancels), and the cycles are skipped; no answer: the check errors;
- `cycles` times on each path, alternating play_enhanced and play_normal,
  at starts across every track: connect, play, wait for the first audio
  frame (the chunk loop and its look-ahead are running), then end it as
  listeners do, in turn: a disconnect, a stop, a seek. A play refused before
  its audio ends the cycles: the slots are gone;
- after: a fresh client's play again, with none of ours connected.
The agent's permit ledger (instrument/agent/permits.py) records each permit
a cancelled stream kept and the line it left its function at; the analysis
(analysis/permits.py) makes the finding, and this check's `after` is its
user-visible impact. cycles: more than Auralis's 10 slots, so that a leak on
every cancel of one path shows as a refusal.

Whether a cancel leaks can depend on timing: Auralis's streams leak only when
the cancel lands while the next chunk's look-ahead is still processing and
the stream is not awaiting it. On an idle machine that window is a few ms
after a fast send (Auralis HEAD, four idle runs: 0 of 12 enhanced cancels
leaked in each); under CPU contention, as in a release load, most do (two
busy cores: 8 of 12 enhanced and 1 of 12 normal). The ledger watches the whole run, so
the load's own disconnects and seeks count as well as these."""
from __future__ import annotations

import time
from typing import Any

from .ws_probe import Probe, excerpt, kind_is, try_open

CYCLES = 12
CANCELS = ("disconnect", "stop", "seek")  # how a listener ends a stream: closes the tab, stops, seeks
SPACING_S = 30.0  # between the cycles' starts in a track: two chunks and more, so each plays new ones


def _error_text(r) -> str:
    data = (r.msg or {}).get("data") or {}
    return str(data.get("error") or data.get("message") or excerpt(r.msg, 200))


def _play(base_url: str, compression: bool, kind: str, track_id: int, timeout: float,
          cancel: str, start: float = 0.0, seek_to: float = 0.0) -> dict[str, Any]:
    """Connect, play, wait for the first audio frame or a refusal, then end
    the stream by `cancel`: "stop" (then wait for playback_stopped), "seek"
    (to seek_to: the server cancels the old stream for a new one, which is
    stopped once it starts), or "disconnect" (mid-stream)."""
    p, why = try_open(base_url, compression=compression)
    if p is None:
        return {"play": kind, "cancel": cancel, "reply": None, "error": why}
    t0 = time.monotonic()
    try:
        p.send(kind, {"track_id": track_id, **({"start_position": start} if start else {})})
        r = p.wait_for(kind_is("binary", "audio_stream_error", "error"), timeout)
        out: dict[str, Any] = {"play": kind, "cancel": cancel, "start_s": start, "reply": r.kind if r else None,
                               "ms": round((time.monotonic() - t0) * 1000, 1)}
        if r is not None and r.kind != "binary":
            out["error"] = _error_text(r)
        elif r is None:
            out["closed"] = p.closed
        if r is None or r.kind != "binary":
            return out
        if cancel == "seek":
            p.send("seek", {"track_id": track_id, "position": seek_to})
            started = p.wait_for(lambda m: m.kind in ("audio_stream_error", "error") or (
                m.kind == "audio_stream_start" and ((m.msg or {}).get("data") or {}).get("is_seek")), timeout)
            out["seek_reply"] = started.kind if started else None
            if started is not None and started.kind != "audio_stream_start":
                out["seek_error"] = _error_text(started)
            cancel = "stop"
        if cancel == "stop":
            p.send("stop")
            p.wait_for(kind_is("playback_stopped"), 5.0)
        return out
    except OSError as e:
        return {"play": kind, "cancel": cancel, "reply": None, "error": f"{type(e).__name__}: {e}"}
    finally:
        p.close()


def stream_slots(*, base_url: str, tracks: list[dict[str, Any]], compression: bool, cycles: int = CYCLES,
                 start_timeout_s: float = 60.0, settle_s: float = 1.0, **_: Any) -> dict[str, Any]:
    usable = [t for t in tracks if t.get("track_id") is not None]
    if not usable:
        return {"outcome": "error", "error": "no track with a server id"}
    usable.sort(key=lambda t: -(t.get("duration_s") or 0.0))
    shortest = usable[-1]
    # where each cycle starts: a chunk the server has processed before (the
    # load's, or an earlier cycle's look-ahead finishing in its orphaned
    # thread) comes back with its look-ahead before the cancel lands, and a
    # cancel only meets a look-ahead still in flight on chunks that are new:
    # so every track at starts SPACING_S apart, before any start repeats
    spots = [(t, float(x)) for t in usable
             for x in range(0, max(1, int((t.get("duration_s") or 0.0) - SPACING_S / 2)), int(SPACING_S))] \
        or [(usable[0], 0.0)]
    res: dict[str, Any] = {"outcome": "done", "t_start": time.time(),
                           "tracks": [{"id": t["track_id"], "name": t.get("name")} for t in usable]}
    res["before"] = _play(base_url, compression, "play_normal", shortest["track_id"], start_timeout_s, "stop")
    res["cycles"] = []
    if res["before"].get("reply") is None:  # no answer at all: the check cannot judge the slots
        res.update(outcome="error", error=f"a fresh stream got no answer before the check: {res['before']}")
        return res
    # a fresh stream refused before any cycle is a measurement, not a failed
    # check: the load's own cancels can have taken every slot already (a
    # slower machine widens the window a leaking cancel needs). No cycle can
    # lose a slot then; `after` still asks once more, after the settle
    # `cycles` of each path, interleaved: one path may leak and the other not
    for i in range(2 * cycles if res["before"].get("reply") == "binary" else 0):
        kind = "play_enhanced" if i % 2 == 0 else "play_normal"
        track, start = spots[(i // 2) % len(spots)]
        c = _play(base_url, compression, kind, track["track_id"], start_timeout_s,
                  CANCELS[(i // 2) % len(CANCELS)], start, seek_to=start + SPACING_S / 2)
        c["track_id"] = track["track_id"]
        res["cycles"].append(c)
        if c.get("reply") != "binary":  # refused or silent: no slot left to lose
            break
    time.sleep(settle_s)  # the server's teardown of the last cancel
    res["after"] = _play(base_url, compression, "play_normal", shortest["track_id"], start_timeout_s, "stop")
    res["t_end"] = time.time()
    return res
