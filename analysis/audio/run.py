"""Audio analysis of a whole run directory: every captured stream, every
detector, confirmed defects turned into Findings grouped across streams."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from analysis.model import Finding, Location
from analysis.rundir import TRACKS_JSON, list_streams, read_float_wav, read_json, relpath

from .capture import analyse_capture
from .defect import AudioDefect
from .format import detect_format_changes
from .geometry import geometry_from_events
from .kept import frozen
from .position import (PositionResult, Request, SourceIndexCache, aligned_by_trace, announcement_names,
                       detect_attenuation, detect_position_defects)
from .requests import RequestMatcher, requested_position

# Streams the client ended itself, or that a seek replaced, are short by
# design: never a length defect of the server. "never_ended" (the server went
# quiet while the client kept reading) and "completed" may be.
LENGTH_CHECKED_ENDINGS = ("completed", "never_ended")

DIMENSION = {
    "length_mismatch": "WebSocket Streaming",
    "sample_rate_or_channels": "WebSocket Streaming",
    "passthrough": "Processing Engine",
    "clipping": "Processing Engine",
    "position_error": "Seek & Buffering",
    "position_jump": "Seek & Buffering",
    "stale_audio_after_seek": "Seek & Buffering",
    "announced_position_mismatch": "Seek & Buffering",
    "attenuation": "Chunked Processing",
}
POSITION_KINDS = ("position_error", "position_jump", "stale_audio_after_seek", "announced_position_mismatch")

TEXT = {
    "click": ("audible click at chunk boundaries", "A waveform discontinuity at the join of two chunks is heard as a click on every playback that crosses it.",
              "Join chunks continuously: process with shared state or crossfade the overlap instead of butt-joining independently mastered chunks."),
    "dropped_samples": ("samples dropped at chunk boundaries", "Audio is lost at the join: a time skip and a click; timing drifts from the source.",
                        "Check the boundary arithmetic (chunk start/end frame, overlap trim) against the frames actually sent."),
    "repeated_samples": ("samples repeated at chunk boundaries", "Audio is played twice at the join: a stutter and a click; timing drifts from the source.",
                         "Check the overlap trim: the overlap used as DSP context must be removed exactly once."),
    "level_step": ("level step at chunk boundaries", "Loudness jumps at the join, heard as a pumping or a bump every chunk.",
                   "Smooth per-chunk gain across boundaries (carry limiter/normaliser state or ramp the gain)."),
    "spectral_step": ("spectral step at chunk boundaries", "Tone colour changes abruptly at the join (per-chunk EQ).",
                      "Carry EQ parameters across chunks or interpolate them over the overlap."),
    "gap": ("silent gap inside the stream", "A dropout the source does not have.",
            "Find where frames of silence are inserted (padding, failed chunk replaced by zeros)."),
    "crossfade_dip": ("level dip over the crossfade region", "A linear crossfade of non-aligned material dips ~3 dB mid-overlap.",
                      "Crossfade sample-aligned renderings, or use an equal-power fade for uncorrelated material."),
    "passthrough": ("enhanced path passes audio through unprocessed", "Users asking for enhancement get the source unchanged, with no error shown.",
                    "Fail loudly (or report the state) when the DSP engine is unavailable instead of returning the input."),
    "clipping": ("clipping in the stream", "Samples at or over full scale that the source does not have: distortion.",
                 "Leave headroom or limit before the output stage."),
    "length_mismatch": ("stream length differs from the source", "The client receives more or fewer samples than the track has from the requested position.",
                        "Make the sent frame count equal the source's from the requested position."),
    "position_error": ("stream starts away from the requested position",
                       "The listener asked for one point of the track and hears another: a seek or resume lands "
                       "early (audio heard twice) or late (audio skipped).",
                       "Derive the first delivered frame from the requested position (start chunk + offset into it) "
                       "and trim the first chunk by exactly that offset."),
    "position_jump": ("source position jumps inside the stream",
                      "Mid-stream the audio continues from another point of the track: a backward jump replays "
                      "audio, a forward one loses it.",
                      "Make each chunk start where the previous one ended in the source; check the chunk plan for "
                      "chunks that are clamped, re-based or re-sent."),
    "stale_audio_after_seek": ("stale audio played after a seek",
                               "After a seek the listener first hears audio of the old position, then the new one.",
                               "Cancel the old stream's pending chunk before the new epoch starts; never tag "
                               "audio rendered for the old position with the new epoch."),
    "announced_position_mismatch": ("announced start position differs from the audio sent",
                                    "The player shows one position while the audio plays another: progress "
                                    "bars and resume points drift.",
                                    "Announce in audio_stream_start the source time of the first frame actually "
                                    "sent."),
    "attenuation": ("audio far quieter than the source over a span",
                    "Music drops out (>= 20 dB quieter than the source) for a second or more, then returns.",
                    "Find the gain stage that starts from a state made on silence (a normaliser or limiter "
                    "envelope, a fade-in) and carry or reset it correctly."),
    "pre_echo": ("pre-echo at chunk boundaries", "The end of the previous chunk is heard again, fading, at the start of the next: an echo every chunk.",
                 "Do not mix the previous chunk's tail into the next chunk's head: it was already sent; join renderings of the same time span only."),
    "fade_in_dip": ("fade-in dip at chunk boundaries", "Every chunk fades in from silence: a short dip in level (breathing) at every join.",
                    "Remove the per-chunk fade-in; carry processing state across the join (render with context) instead."),
    "sample_rate_or_channels": ("sample rate or channel count changes", "The client must resample or remap mid-stream, or plays at the wrong speed.",
                                "Keep the declared format equal to the source's and to every chunk's counts."),
}


def _severity(kind: str, magnitude: float, stream_type: str, every_playback: bool) -> str:
    """Auralis's audit severity table applied to audio defects:
    - CRITICAL: a sample-count mismatch in a DSP stage (length mismatch on the
      enhanced path), clicks or gaps on every playback;
    - HIGH: chunk drops/repeats at boundaries, audible gaps > 1 ms, clicks that
      are not on every playback, pass-through (a feature silently off), format changes;
    - MEDIUM: level/spectral steps and crossfade dips, unless large (>= 3 dB: HIGH);
      clipping (a mastering-quality defect the source does not have).
    """
    if kind == "length_mismatch":
        return "CRITICAL" if stream_type == "enhanced" else "HIGH"
    if kind in ("click", "gap"):
        return "CRITICAL" if every_playback else "HIGH"
    if kind in ("dropped_samples", "repeated_samples", "passthrough", "sample_rate_or_channels",
                "stale_audio_after_seek", "pre_echo"):
        return "HIGH"
    if kind in ("position_jump", "attenuation"):
        # audio lost, replayed or dropped out: on every playback it is the worst the table has
        return "CRITICAL" if every_playback else "HIGH"
    if kind == "position_error":
        # a 5 s offset or a replay of a chunk is HIGH; a few frames to a few hundred ms, MEDIUM
        return "HIGH" if abs(magnitude) >= 0.5 else "MEDIUM"
    if kind == "announced_position_mismatch":
        return "MEDIUM"
    if kind in ("level_step", "spectral_step", "crossfade_dip", "fade_in_dip"):
        return "HIGH" if abs(magnitude) >= 3.0 else "MEDIUM"
    return "MEDIUM"


def _tracks(run_dir: Path) -> list[dict[str, Any]]:
    doc = read_json(run_dir / TRACKS_JSON, []) or []
    return doc if isinstance(doc, list) else doc.get("tracks", [])


def _source_for(track_id: Any, tracks: list[dict[str, Any]], run_dir: Path, cache: dict) -> tuple[np.ndarray | None, dict]:
    for t in tracks:
        if track_id is not None and str(t.get("track_id")) == str(track_id) and t.get("file"):
            path = run_dir / t["file"]
            if path not in cache:
                try:
                    # frozen: what each stream's analysis derives from it is kept (alignment.derived)
                    cache[path] = frozen(read_float_wav(path)[0])
                except Exception:
                    cache[path] = None
            return cache[path], t
    return None, {}


def _pattern(defects: list[AudioDefect], n_boundaries: int) -> str:
    at = {d.boundary_index for d in defects if d.boundary_index is not None}
    if not at:
        return "off-boundary"
    return "every-boundary" if len(at) == n_boundaries else "some-boundaries"


def analyse_run(run_dir: Path, *, plots: bool = True) -> tuple[list[Finding], dict[str, float]]:
    run_dir = Path(run_dir)
    tracks = _tracks(run_dir)
    cache: dict = {}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    streams_by_type: dict[str, int] = defaultdict(int)
    n_streams = n_boundaries = n_defects = 0
    captures: dict[str, tuple[np.ndarray, int, Any]] = {}
    played: set[str] = set()  # stream types the run played, with or without audio to analyse
    streams = list_streams(run_dir)
    matcher = RequestMatcher(run_dir, streams)
    positions: dict[str, tuple[PositionResult, Any]] = {}
    sources = _PositionSources()
    pos_figures = {"placed": 0, "unjudged": 0, "error_max": 0.0, "jumps": 0, "stale": 0, "atten_max": 0.0}
    for st in streams:
        start = st.start or {}
        summ = st.summary
        stype = str(summ.get("stream_type") or start.get("stream_type") or "unknown")
        played.add(stype)
        wav = st.dir / "audio.wav"
        if not wav.exists():
            continue
        try:
            x, sr = read_float_wav(wav)
        except Exception:
            continue
        if len(x) < sr // 10:
            continue
        track_id = summ.get("track_id", start.get("track_id"))
        source, tinfo = _source_for(track_id, tracks, run_dir, cache)
        pos = summ.get("start_position") or start.get("seek_position") or 0.0
        offset = int(round(float(pos or 0.0) * sr))
        geom = geometry_from_events(st.events, channels=x.shape[1])
        b = np.array([f for f in geom.frames() if 0 < f < len(x)], dtype=np.int64)
        ended = summ.get("ended")
        check_len = ended in LENGTH_CHECKED_ENDINGS
        expected = (len(source) - offset) if (check_len and source is not None) else None
        # a seek position travels in seconds: when it falls between two frames,
        # whether the server floors or rounds it is its business (+-1 frame)
        # (and 22.4 s * 44100 is 987839.99999... in floating point, which a
        # server's int() floors: only an exact product is one frame)
        between = float(pos or 0.0) * sr != offset
        res = analyse_capture(x, sr, b, source=source, source_offset=offset, enhanced=(stype == "enhanced"),
                              expected_frames=expected,
                              length_tolerance=1 if between else 0)
        defects = list(res.defects)
        if source is not None and len(source):
            pres = _position_defects(st, x, sr, source, b, stype, matcher, sources)
            if pres is not None:
                positions[st.id] = pres
                pos_defects = pres[0].defects + pres[1]
                defects = _explained_lengths(defects, pres[0], offset, sr) + pos_defects
                if pres[0].start_s is not None:
                    pos_figures["placed"] += 1
                elif pres[0].requested_s:
                    # asked for a position the audio cannot be placed at (a tone,
                    # a silence): that seek or resume went unjudged
                    pos_figures["unjudged"] += 1
                for d in pos_defects:
                    if d.kind == "position_error":
                        pos_figures["error_max"] = max(pos_figures["error_max"], abs(d.magnitude))
                    elif d.kind == "position_jump":
                        pos_figures["jumps"] += 1
                    elif d.kind == "stale_audio_after_seek":
                        pos_figures["stale"] += 1
                    elif d.kind == "attenuation":
                        pos_figures["atten_max"] = max(pos_figures["atten_max"], d.detail.get("max_db", d.magnitude))
        defects += detect_format_changes(
            declared=[(start.get("sample_rate"), start.get("channels"))] if start else [],
            capture=(sr, x.shape[1]),
            source=(int(tinfo.get("sample_rate") or sr), int(tinfo.get("channels") or x.shape[1])) if tinfo else None,
            metas=st.chunk_metas(), sr=sr)
        n_streams += 1
        n_boundaries += len(b)
        n_defects += len(defects)
        streams_by_type[stype] += 1
        src_view = None
        if res.alignment is not None and res.alignment.start_lag is not None and source is not None:
            from .alignment import aligned_source

            src_view = aligned_source(source, len(x), res.alignment)
        captures[st.id] = (x, sr, src_view)
        by_kind: dict[str, list[AudioDefect]] = defaultdict(list)
        for d in defects:
            by_kind[d.kind].append(d)
        for kind, ds in by_kind.items():
            key = f"{kind}|{stype}|{_pattern(ds, len(b))}"
            groups[key].append({"stream": st.id, "scenario": summ.get("scenario"), "stream_type": stype,
                                "defects": ds, "n_boundaries": len(b), "track": tinfo.get("name") or track_id,
                                "boundaries_s": res.boundaries_s})
    findings = [_finding(key, items, streams_by_type, captures, run_dir, plots, positions)
                for key, items in sorted(groups.items())]
    metrics = {"audio_findings": float(len(findings)), "audio_streams_analysed": float(n_streams),
               "audio_boundaries_checked": float(n_boundaries), "audio_defects": float(n_defects),
               "position_streams_placed": float(pos_figures["placed"]),
               "position_requests_unjudged": float(pos_figures["unjudged"]),
               "position_error_max_s": float(pos_figures["error_max"]),
               "position_jumps": float(pos_figures["jumps"]),
               "stale_audio_streams": float(pos_figures["stale"]),
               "attenuation_max_db": float(pos_figures["atten_max"])}
    for stype in sorted(played - {"unknown"}):
        metrics[f"audio_streams_analysed_{stype}"] = float(streams_by_type.get(stype, 0))
    if played:
        # a path whose every stream errored or stopped before audio: no audio
        # finding there means nothing was checked, not that it is clean
        metrics["audio_stream_types_unanalysed"] = float(sum(1 for t in played - {"unknown"}
                                                             if not streams_by_type.get(t)))
    return findings, metrics


class _PositionSources:
    """Each source in the capture's channel layout, and its whole-source
    index, made once per run rather than once per stream."""

    def __init__(self) -> None:
        self.index = SourceIndexCache()
        self._fitted: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def fitted(self, source: np.ndarray, channels: int) -> np.ndarray:
        if source.shape[1] == channels:
            return source
        hit = self._fitted.get((id(source), channels))
        if hit is None or hit[0] is not source:
            fit = frozen(np.repeat(source[:, :1], channels, axis=1)) if source.shape[1] == 1 \
                else source[:, :channels]
            hit = self._fitted[(id(source), channels)] = (source, fit)
        return hit[1]


def _position_defects(st: Any, x: np.ndarray, sr: int, source: np.ndarray, b: np.ndarray, stype: str,
                      matcher: RequestMatcher, sources: _PositionSources | None = None,
                      ) -> tuple[PositionResult, list[AudioDefect], Any] | None:
    """Position truth and attenuation of one stream (see position.py)."""
    sources = sources or _PositionSources()
    source = sources.fitted(source, x.shape[1])
    cands = matcher.candidates(st)
    positions = [(i, requested_position(m), m) for i, m in cands]
    positions = [p for p in positions if p[1] is not None]
    start = st.start or {}
    announced = start.get("seek_position") if start.get("is_seek") else None
    announced = float(announced) if isinstance(announced, (int, float)) and not isinstance(announced, bool) else None
    if positions:
        last = positions[-1]
        req = Request(last[1], str(last[2].get("type")), announced, [p[1] for p in positions[:-1]])
    else:
        req = Request(None, "", announced)
    enhanced = stype == "enhanced"
    res = detect_position_defects(x, source, sr, req, boundaries=b, enhanced=enhanced, index_cache=sources.index)
    if positions:
        # the request this stream consumes is the oldest one it answers: of
        # two seeks the announcement names alike (14.64 and 14.99 both start
        # at 15.0 after the chunk-end advance), a server answering in order
        # answered the older, and a request sent between them (5.63 s) is
        # still waiting for the next stream
        same = [p for p in positions if p[1] == res.requested_s]
        if announced is not None and same:
            same = [p for p in positions if announcement_names(announced, p[1], sr)] or same
        chosen = same[0] if same else positions[-1]
        matcher.answered(st, chosen[0])
        res.request_kind = str(chosen[2].get("type"))  # type: ignore[attr-defined]
    src_al = aligned_by_trace(source, res.trace, len(x))
    atten = detect_attenuation(x, src_al, sr)
    return res, atten, src_al


def _explained_lengths(defects: list[AudioDefect], pos: PositionResult, offset: int, sr: int) -> list[AudioDefect]:
    """A length mismatch against the source that a wrong start or a jump
    explains to the frame is that defect's consequence, not a second one."""
    if pos.start_s is None:
        return defects
    explained = (offset - pos.start_s * sr) - sum(j["size_s"] * sr for j in pos.jumps)
    # jumps at a chunk boundary that the continuity check owns are reported by
    # it, and the grouping stage folds the length into that finding instead
    reported = [j for j in pos.jumps if not (j.get("boundary_index") is not None and abs(j["size_s"]) <= 8.0)]
    out = []
    for d in defects:
        if (d.kind == "length_mismatch" and d.detail.get("versus") == "source"
                and (reported or abs(pos.start_s * sr - offset) > 1) and abs(d.magnitude - explained) <= 32):
            continue
        out.append(d)
    return out


def _position_evidence(it: dict[str, Any], d: AudioDefect) -> str:
    dd = d.detail
    head = f"stream {it['stream']} ({it['track']}): "
    if d.kind == "position_error":
        ann = f", announced {dd['announced_s']:.3f} s" if dd.get("announced_s") is not None else ""
        return (head + f"{dd.get('request')} asked {dd['requested_s']:.3f} s, audio starts at {dd['actual_s']:.3f} s "
                f"of the source ({d.magnitude:+.3f} s){ann}")
    if d.kind == "position_jump":
        where = f"boundary {d.boundary_index}, " if d.boundary_index is not None else "inside a chunk, "
        return (head + f"at t={d.time_s:.3f} s ({where}) the source jumps {dd['from_s']:.3f} -> {dd['to_s']:.3f} s "
                f"({d.magnitude:+.3f} s, {dd['direction']})")
    if d.kind == "stale_audio_after_seek":
        return (head + f"{dd.get('request')} to {dd['requested_s']:.3f} s: the first {d.magnitude:.3f} s play "
                f"{dd['stale_from_s']:.3f}-{dd['stale_until_s']:.3f} s of the source, then the requested position")
    if d.kind == "announced_position_mismatch":
        return (head + f"audio starts at {dd['actual_s']:.3f} s as asked ({dd['requested_s']}), audio_stream_start "
                f"announces {dd['announced_s']:.3f} s")
    if d.kind == "attenuation":
        rec = f"recovers at {dd['recovery_s']:.2f} s" if dd.get("recovery_s") is not None else "never recovers"
        return (head + f"from t={dd['onset_s']:.2f} s the capture is {d.magnitude:.1f} dB (max {dd['max_db']:.1f}) "
                f"below the source over {dd['attenuated_s']:.1f} s of signal; {rec}")
    return head + f"t={d.time_s:.3f} s, {d.magnitude:.3f} {d.unit}"


def _finding(key: str, items: list[dict[str, Any]], streams_by_type: dict[str, int], captures: dict,
             run_dir: Path, plots: bool, positions: dict | None = None) -> Finding:
    kind, stype, pattern = key.split("|")
    all_d = [(it, d) for it in items for d in it["defects"]]
    worst_it, worst = max(all_d, key=lambda p: (abs(p[1].magnitude) if p[1].unit != "dBFS" else p[1].magnitude, p[1].score))
    every = pattern == "every-boundary" and len(items) == streams_by_type.get(stype, 0)
    title, impact, fix = TEXT[kind]
    n_b = len({(it["stream"], d.boundary_index) for it, d in all_d if d.boundary_index is not None})
    evidence = [f"{len(items)} of {streams_by_type.get(stype, 0)} {stype} stream(s) show it; "
                f"{n_b} boundary instance(s); pattern: {pattern}"]
    for it, d in all_d[:20]:
        if kind in POSITION_KINDS or kind == "attenuation":
            evidence.append(_position_evidence(it, d))
            continue
        where = f"boundary {d.boundary_index} " if d.boundary_index is not None else ""
        evidence.append(f"stream {it['stream']} ({it['track']}): {where}t={d.time_s:.4f} s, "
                        f"{d.magnitude:.2f} {d.unit}, score {d.score:.1f}, false-alarm rate {d.false_alarm_rate:.2g}")
    if len(all_d) > 20:
        evidence.append(f"... and {len(all_d) - 20} more")
    artifacts = []
    if plots and kind in POSITION_KINDS and positions:
        from .plots import plot_position_trace

        # one trace per affected stream (up to 6): a jump, a replay or an offset is visible at a glance
        for it in items[:6]:
            if it["stream"] not in positions:
                continue
            pres = positions[it["stream"]][0]
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"position_{it['stream']}") + ".png"
            try:
                p = plot_position_trace(pres, run_dir / "plots" / name,
                                        title=f"{kind}: stream {it['stream']} ({it['track']}, {stype})")
                if relpath(p, run_dir) not in artifacts:
                    artifacts.append(relpath(p, run_dir))
                evidence.append(f"position trace: {relpath(p, run_dir)}")
            except Exception as e:  # a plot must never cost the finding
                evidence.append(f"plot failed: {type(e).__name__}")
    elif plots and worst_it["stream"] in captures:
        from .plots import plot_defect

        x, sr, src = captures[worst_it["stream"]]
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{kind}_{worst_it['stream']}_{worst.time_s:.3f}") + ".png"
        try:
            p = plot_defect(x, sr, worst.time_s, run_dir / "plots" / name, source=src,
                            title=f"{kind}: {worst.magnitude:.2f} {worst.unit} (stream {worst_it['stream']})")
            artifacts.append(relpath(p, run_dir))
            evidence.append(f"plot: {relpath(p, run_dir)}")
        except Exception as e:  # a plot must never cost the finding
            evidence.append(f"plot failed: {type(e).__name__}")
    if kind in POSITION_KINDS or kind == "attenuation":
        desc = (f"{title[0].upper() + title[1:]} on the {stype} path: worst {worst.magnitude:+.3f} {worst.unit} at "
                f"t={worst.time_s:.3f} s of stream {worst_it['stream']}. Where each part of the capture lies in the "
                f"source is measured by correlation against the source track (a position trace every 0.25 s), and "
                f"compared with the position the client requested (play start_position or seek position) and the "
                f"one audio_stream_start announced.")
        figures = {"worst_magnitude": float(worst.magnitude), "affected_streams": float(len(items)),
                   "affected_boundaries": float(n_b), "score": float(worst.score), "false_alarm_rate": 0.0}
        return Finding(
            kind=kind, title=f"{title[0].upper() + title[1:]} ({stype} path)",
            severity=_severity(kind, worst.magnitude, stype, every),
            dimension=DIMENSION.get(kind, "Chunked Processing"),
            description=desc, impact=impact, suggested_fix=fix,
            location=Location(scenario=worst_it["scenario"], stream=worst_it["stream"], time_s=float(worst.time_s)),
            evidence=evidence, figures=figures, artifacts=artifacts, key=key,
            # where it happened, so the grouping stage folds a boundary's other symptoms into it
            sites=[{"stream": it["stream"], "t": round(float(d.time_s), 4), "value": None} for it, d in all_d[:400]])
    desc = (f"{title[0].upper() + title[1:]} on the {stype} path: worst {worst.magnitude:.2f} {worst.unit} at "
            f"t={worst.time_s:.3f} s of stream {worst_it['stream']}. Boundaries come from the stream's own "
            f"chunk_index changes ({', '.join(f'{b:.2f}' for b in worst_it['boundaries_s'][:8])} s); each boundary "
            f"metric is compared with the same metric at non-boundary positions of the same stream.")
    figures = {"worst_magnitude": float(worst.magnitude), "affected_boundaries": float(n_b),
               "affected_streams": float(len(items)), "score": float(worst.score),
               "false_alarm_rate": float(min(d.false_alarm_rate for _, d in all_d))}
    return Finding(
        kind=kind, title=f"{title[0].upper() + title[1:]} ({stype} path)",
        severity=_severity(kind, worst.magnitude, stype, every),
        dimension=DIMENSION.get(kind, "Chunked Processing"), description=desc, impact=impact, suggested_fix=fix,
        location=Location(scenario=worst_it["scenario"], stream=worst_it["stream"], time_s=float(worst.time_s)),
        evidence=evidence, figures=figures, artifacts=artifacts, key=key,
        # every instance, for the grouping stage: boundary defects by stream and
        # time, a length by stream with its signed size in frames
        sites=[{"stream": it["stream"], "t": None if kind == "length_mismatch" else round(float(d.time_s), 4),
                "value": _signed(d)} for it, d in all_d[:400]])


def _signed(d: AudioDefect) -> float | None:
    """Frames added (+) or lost (-) by the defect, where it has that meaning."""
    if d.kind in ("length_mismatch",):
        return float(d.magnitude)
    if d.kind == "repeated_samples":
        return abs(float(d.magnitude))
    if d.kind == "dropped_samples":
        return -abs(float(d.magnitude))
    return None
