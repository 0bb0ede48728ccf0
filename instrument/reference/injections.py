"""Defects the reference backend can be told to have (`--inject a,b`), each
with what a correct tool must report. Boundary injections act at every chunk
boundary k >= 1 (normal path: 15, 30, 45 s...; enhanced: 15, 25, 35 s...) on
BOTH paths; on the enhanced path they apply to the mastered audio."""
from __future__ import annotations

from dataclasses import dataclass

INJECTIONS: dict[str, str] = {
    "boundary-click": "both paths: a +0.5 single-sample impulse added to the first sample of each chunk k>=1 "
                      "-> a click finding at every boundary time, nowhere else",
    "level-step": "both paths: per-chunk gains butt-joined without smoothing, alternating +0.75/-0.75 dB "
                  "(chunk 0 +0.75) -> a level_step finding of ~1.5 dB at every boundary",
    "linear-crossfade-dip": "both paths: the first 500 ms of each chunk k>=1 overlap-added with LINEAR fades onto "
                            "the last 500 ms of the previous chunk -> 500 ms missing per boundary and a ~3 dB dip "
                            "mid-fade on uncorrelated material (crossfade_dip)",
    "drop-samples": "both paths: 64 sample frames dropped at the start of each chunk k>=1 -> dropped_samples of "
                    "64 frames at every boundary; delivered length short by 64 per boundary",
    "repeat-overlap": "both paths: each chunk k>=1 starts 5 s before its nominal start, so the 5 s overlap is "
                      "sent twice -> repeated_samples of 5.000 s at every boundary; length +5 s per boundary",
    "gap": "both paths: the first 50 ms of each chunk k>=1 replaced by digital zeros -> a gap of 50 ms at every "
           "boundary",
    "pre-echo": "both paths: the last 200 ms of chunk k-1 (already sent whole) mixed again into the first 200 ms "
                "of chunk k>=1 with an equal-power fade (sin^2/cos^2, as Auralis before 48a038ee) -> a pre_echo "
                "finding at every boundary, replayed length ~200 ms, fading out over ~200 ms, and no other "
                "boundary finding; length unchanged",
    "fade-in-dip": "both paths: the first 200 ms of each chunk k>=1 faded in from silence (sin^2, as Auralis from "
                   "48a038ee to 86da9e75) -> a fade_in_dip finding at every boundary, ~200 ms long and >= 20 dB "
                   "deep, and no other boundary finding; length unchanged",
    "blocking-send": "both paths: time.sleep(0.12) on the event loop in send_chunk_blocking (streaming.py), once "
                     "per chunk after its last frame -> loop stalls of ~120 ms, waiting not computing, attributed "
                     "to that function's file:line",
    "unbounded-buffer": "both paths: ignores backpressure and pause/flow control: renders the whole track at "
                        "stream start and queues it unbounded per connection (float64 copies + bytes, ~3x the "
                        "float32 track) -> RSS grows with every stalled or slow reader",
    "leak-on-disconnect": "keeps 1048576 bytes (1 MiB) of per-connection state in a module-level list on every "
                          "disconnect -> rss_leak of ~1 MiB per connect/stream/disconnect cycle (~100 MiB per 100)",
    "chunk-timeout": "enhanced path: the second chunk's processing 'times out' as Auralis's does under CPU "
                     "starvation: audio_stream_error 'Audio processing timed out on chunk N; stream stopped', then "
                     "audio_stream_end reason 'stopped' -> a HIGH stream_error finding counting every enhanced "
                     "stream, and streams_failed = the number of enhanced streams",
    "slow-start": "both paths: await asyncio.sleep(2.0) between audio_stream_start and the first chunk -> time "
                  "to first audio >= 2 s, without a loop stall",
    "loop-saturation": "while any client is connected: ~8 ms synchronous CPU turns in saturate_loop_turn "
                       "(streaming.py) every ~2 ms, each below a 50 ms stall threshold -> loop_saturation (loop "
                       "busy > 60%) naming that function, and no loop_stall",
    "schema-violation": "REST: GET /api/library/tracks answers `total` as a string (its declared schema says "
                        "integer) and a plain-text 500 for an offset past the end; GET /api/library/tracks/{id} "
                        "answers 404 as {error, message} where every other error is {detail} -> openapi check: "
                        "api_schema_violation and api_server_error on GET /api/library/tracks, "
                        "api_non_json_error on it, api_inconsistent_error_body naming GET /api/library/tracks/{track_id}",
    "cors-wildcard-credentials": "CORS allow_origins=['*'] with allow_credentials=True (any Origin reflected with "
                                 "Access-Control-Allow-Credentials: true), /ws accepts any Origin, and no Origin "
                                 "check on state-changing REST -> origins check: cors_wildcard_credentials, "
                                 "ws_foreign_origin_accepted and rest_foreign_origin_served",
    "bad-file-hang": "a listed track whose file cannot be read (the bad_files check's truncated FLAC and the WAV "
                     "that vanished after the scan) makes its stream hang: no audio_stream_start, no "
                     "audio_stream_error, no end, its stream slot held -> bad_files check: bad_file_stream_hang "
                     "for bad_truncated_flac.flac and bad_vanished_wav.wav, nothing else",
    "bad-file-traceback": "the audio_stream_error for a listed track whose file cannot be read carries the Python "
                          "traceback (file paths and line numbers) -> bad_files check: bad_file_traceback_leak for "
                          "bad_truncated_flac.flac and bad_vanished_wav.wav, nothing else",
    "contract-drift": "/ws: after a seek, audio_stream_end total_samples/duration count the whole track instead of "
                      "the frames delivered; an unknown message type is answered with the undocumented error code "
                      "'unknown_command' -> ws_contract check: ws_contract_wrong_totals (key audio_stream_end:totals) "
                      "and ws_contract_undocumented_error_code (key error:code:unknown_command)",
    "shared-state": "/ws: a play_enhanced preset/intensity is written into the app-wide default (so other clients' "
                    "streams and new clients get it) and every play's mastering_recommendation goes to every "
                    "client -> isolation check: isolation_shared_settings and isolation_broadcast",
    "crash-on-bad-message": "/ws: a play/seek with a wrongly typed field (track_id 'abc', position 'x') silently "
                            "kills the connection's handler: no error, and every later message on that connection "
                            "goes unanswered while it stays open -> socket_input check: socket_input_no_reply and "
                            "socket_input_dead_connection for track_id_string, start_position_string, "
                            "seek_position_string",
    "seek-offset": "both paths: a `seek` streams from N s after the requested position (N = 5, or "
                   "EARSHOT_REF_SEEK_OFFSET_S) while audio_stream_start still announces the requested one, as "
                   "Auralis's enhanced seek once landed 5 s late -> a HIGH position_error of +N s on every seeked "
                   "stream (Seek & Buffering), and no position finding on plays",
    "resume-replay": "both paths: a play_normal/play_enhanced with start_position streams from the start of the "
                     "chunk holding that position (announcing the requested one), as Auralis's normal-path resume "
                     "once did -> a position_error of -(start_position - chunk start) s, up to -15 s, on every "
                     "positioned play; HIGH when >= 0.5 s",
    "stale-after-seek": "both paths: after a seek that interrupts a stream of the same track, the first 300 KB frame "
                        "(~0.87 s) of the chunk the old stream would have sent next is sent on the NEW epoch before "
                        "the new audio -> stale_audio_after_seek of ~0.87 s on seeked streams that received more "
                        "than that (HIGH, Seek & Buffering)",
    "attenuate-after-silence": "both paths: the first 3 s of audio after a leading digital silence of >= 1 s are "
                               "sent 30 dB quieter (the silence-lead track: 25.0-28.0 s) -> an attenuation finding "
                               "of ~30 dB with onset at the end of the silence and recovery 3 s later (Chunked "
                               "Processing), on streams that play that span",
    "short-track-trim": "both paths: on a track shorter than two 15 s chunks, the last chunk is cut as a full 15 s "
                        "chunk ending at the track's end, so it replays (30 s - duration) of audio (11.5 s on the "
                        "18.5 s `short` track) -> a backward position_jump of that size at the first boundary "
                        "(HIGH), the stream that much too long",
    "restart-loses-settings": "REST: PUT /api/settings is acknowledged but kept in memory, written to the SQLite "
                              "database only at a clean shutdown -> crash_restart check: restart_lost_state naming "
                              "GET /api/settings (the settings written before the kill -9 are gone after the restart), "
                              "nothing else",
    "unsafe-concurrent-write": "REST: POST /api/presets does a read-modify-write of one JSON row outside any lock, on a "
                               "fresh SQLite connection with busy timeout 0 -> concurrent_writes check: "
                               "db_locked_500 and lost_acknowledged_writes naming POST /api/presets",
    "path-traversal": "REST: GET /api/library/file?path= joins the path onto ~/Music without resolving it or "
                      "confining it to the library (../, encoded ../, absolute paths and symlinks planted in the "
                      "library all reach outside) -> path_traversal check: a CRITICAL path_traversal finding naming "
                      "GET /api/library/file (the canary outside the library served), nothing for "
                      "GET /api/library/tracks/{track_id}/file",
    "shutdown-leaks-children": "the first /ws connection starts a helper process in its own session that outlives "
                               "the server by 120 s -> shutdown check: shutdown_orphan_children (1 process), "
                               "nothing else",
    "slot-leak-on-cancel": "both paths: a stream's finally drains a look-ahead task before releasing its stream "
                           "slot and re-raises the CancelledError when the stream itself is being cancelled (as "
                           "Auralis's streams with drain_cancelled_task since #5083), so every stream cancelled by a "
                           "disconnect, seek or new play keeps its slot; once EARSHOT_REF_MAX_STREAMS are gone every "
                           "new stream gets 'Server busy' -> a HIGH permit_leak finding at that finally's line in "
                           "Session.stream, one permit per cancelled stream",
}


@dataclass(frozen=True)
class Promise:
    """One finding an injection must produce, alone on the reference backend:
    its kind (the grouped finding's own, or one of its symptoms'), severity,
    and the measured figure that carries the injected magnitude."""

    kind: str
    severity: str
    magnitude: str  # the injected size, in words
    figure: str | None = None  # a figure of that finding
    low: float | None = None  # the figure's accepted range (absolute value)
    high: float | None = None

    def render(self) -> str:
        rng = f" ({self.figure} in [{self.low:g}, {self.high:g}])" if self.figure and self.low is not None else ""
        return f"{self.kind} {self.severity}: {self.magnitude}{rng}"


# What each injection promises, checked by tests/e2e/test_one_finding_per_injection.py
# (run-level injections) and the dynamic checks' own tests. One entry = one
# finding after grouping; an injection that plants several distinct defects
# (a REST API with three unrelated faults) promises one finding per defect.
PROMISES: dict[str, tuple[Promise, ...]] = {
    "boundary-click": (Promise("click", "CRITICAL", "a click at every boundary of every playback",
                               "affected_boundaries", 1, 10),),
    "level-step": (Promise("level_step", "MEDIUM", "a 1.5 dB level step at every boundary",
                           "worst_magnitude", 1.3, 1.7),),
    "linear-crossfade-dip": (Promise("missing_audio", "CRITICAL", "22050 frames (500 ms) lost per boundary",
                                     "span_frames", 22050, 22050),),
    "drop-samples": (Promise("missing_audio", "CRITICAL", "64 frames lost per boundary", "span_frames", 64, 64),),
    "repeat-overlap": (Promise("repeated_audio", "CRITICAL", "220500 frames (5 s) sent twice per boundary",
                               "span_frames", 220500, 220500),),
    "gap": (Promise("gap", "CRITICAL", "50 ms of silence at every boundary", "worst_magnitude", 45, 55),),
    "blocking-send": (Promise("loop_stall", "MEDIUM", "~120 ms stalls in send_chunk_blocking", "p50_ms", 100, 400),),
    "unbounded-buffer": (Promise("no_backpressure", "HIGH", "RSS grows with every stalled reader"),),
    "leak-on-disconnect": (Promise("rss_leak", "HIGH", "1 MiB per connect/stream/disconnect cycle",
                                   "rss_per_100_cycles", 75, 125),),
    "chunk-timeout": (Promise("stream_error", "HIGH", "every enhanced stream stopped by the timeout error"),),
    "slow-start": (Promise("slow_time_to_first_audio", "MEDIUM", ">= 2 s to first audio", "ttfa_max_ms",
                           2000, 60000),),
    "loop-saturation": (Promise("loop_saturation", "MEDIUM", "loop busy > 60% in saturate_loop_turn"),),
    "schema-violation": (Promise("api_schema_violation", "MEDIUM", "`total` answered as a string"),
                         Promise("api_server_error", "HIGH", "a plain-text 500 for an offset past the end"),
                         Promise("api_non_json_error", "MEDIUM", "that 500's body is not JSON"),
                         Promise("api_inconsistent_error_body", "LOW", "404 as {error, message}")),
    "cors-wildcard-credentials": (Promise("cors_wildcard_credentials", "HIGH", "any Origin with credentials"),
                                  Promise("ws_foreign_origin_accepted", "HIGH", "/ws accepts any Origin"),
                                  Promise("rest_foreign_origin_served", "MEDIUM", "no Origin check on REST")),
    "bad-file-hang": (Promise("bad_file_stream_hang", "HIGH", "the truncated FLAC's stream hangs"),
                      Promise("bad_file_stream_hang", "HIGH", "the vanished WAV's stream hangs")),
    "bad-file-traceback": (Promise("bad_file_traceback_leak", "MEDIUM", "the truncated FLAC's error has a traceback"),
                           Promise("bad_file_traceback_leak", "MEDIUM", "the vanished WAV's error has a traceback")),
    "contract-drift": (Promise("ws_contract_wrong_totals", "MEDIUM", "end totals count the whole track after a seek"),
                       Promise("ws_contract_undocumented_error_code", "LOW", "error code 'unknown_command'")),
    "shared-state": (Promise("isolation_shared_settings", "MEDIUM", "one client's preset becomes the default"),
                     Promise("isolation_broadcast", "LOW", "recommendations go to every client")),
    # one defect (the handler dies): a dead connection, its silence a symptom
    "crash-on-bad-message": (Promise("socket_input_dead_connection", "HIGH",
                                     "wrongly typed fields get no reply and the connection stops answering"),),
    # position truth (issue 14): each on the streams that reach it
    "seek-offset": (Promise("position_error", "HIGH", "every seek lands 5 s late", "worst_magnitude", 4.9, 5.1),),
    "resume-replay": (Promise("position_error", "HIGH", "a positioned play starts at its chunk's start, up to 15 s "
                              "early", "worst_magnitude", 0.5, 15.0),),
    "stale-after-seek": (Promise("stale_audio_after_seek", "HIGH", "~0.87 s of the old position after a seek",
                                 "worst_magnitude", 0.5, 1.2),),
    "attenuate-after-silence": (Promise("attenuation", "HIGH", "3 s 30 dB quieter after the leading silence",
                                        "worst_magnitude", 20.0, 40.0),),
    "short-track-trim": (Promise("position_jump", "CRITICAL", "11.5 s replayed at the first boundary of `short`",
                                 "worst_magnitude", 10.5, 12.5),),
    # boundary signatures from Auralis's history (issue 18)
    "pre-echo": (Promise("pre_echo", "HIGH", "the last 200 ms of each chunk replayed, fading, into the next",
                         "worst_magnitude", 150, 250),),
    "fade-in-dip": (Promise("fade_in_dip", "HIGH", "every chunk k>=1 faded in from silence over 200 ms"),),
    # lifecycle checks (issue 19), checked by tests/e2e/test_lifecycle_checks.py
    "restart-loses-settings": (Promise("restart_lost_state", "HIGH", "settings written before a kill -9 are gone"),),
    "unsafe-concurrent-write": (Promise("db_locked_500", "HIGH", "'database is locked' leaks as a 500"),
                                Promise("lost_acknowledged_writes", "CRITICAL", "acknowledged preset writes lost")),
    "path-traversal": (Promise("path_traversal", "CRITICAL", "the canary outside the library is served"),),
    "shutdown-leaks-children": (Promise("shutdown_orphan_children", "HIGH", "1 process outlives the backend"),),
    "slot-leak-on-cancel": (Promise("permit_leak", "HIGH", "a stream slot kept by every cancelled stream",
                                    "permits_leaked", 1, 10000),),
}


def describe(name: str) -> str:
    """`--list-injections` text: what the injection does and what it promises."""
    text = INJECTIONS[name]
    promised = PROMISES.get(name)
    if promised:
        text += "\n      promises: " + "; ".join(p.render() for p in promised)
    return text


def parse_injections(text: str | None) -> frozenset[str]:
    names = frozenset(x.strip() for x in (text or "").split(",") if x.strip())
    unknown = sorted(names - set(INJECTIONS))
    if unknown:
        raise ValueError(f"unknown injection '{unknown[0]}' (known: {', '.join(INJECTIONS)})")
    return names
