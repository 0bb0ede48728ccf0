"""Defects the reference backend can be told to have (`--inject a,b`), each
with what a correct tool must report. Boundary injections act at every chunk
boundary k >= 1 (normal path: 15, 30, 45 s...; enhanced: 15, 25, 35 s...) on
BOTH paths; on the enhanced path they apply to the mastered audio."""
from __future__ import annotations

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
    "loop-saturation": "while any stream is open: ~8 ms synchronous CPU turns in saturate_loop_turn "
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
}


def parse_injections(text: str | None) -> frozenset[str]:
    names = frozenset(x.strip() for x in (text or "").split(",") if x.strip())
    unknown = sorted(names - set(INJECTIONS))
    if unknown:
        raise ValueError(f"unknown injection '{unknown[0]}' (known: {', '.join(INJECTIONS)})")
    return names
