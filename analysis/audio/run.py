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

# Streams the client ended itself, or that a seek replaced, are short by
# design: never a length defect of the server. "never_ended" (the server went
# quiet while the client kept reading) and "completed" may be.
LENGTH_CHECKED_ENDINGS = ("completed", "never_ended")

DIMENSION = {
    "length_mismatch": "WebSocket Streaming",
    "sample_rate_or_channels": "WebSocket Streaming",
    "passthrough": "Processing Engine",
    "clipping": "Processing Engine",
}

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
    "length_mismatch": ("stream length differs from the source", "The client receives more or fewer samples than the track has (or than audio_stream_end declares).",
                        "Make the sent frame count equal the source's, and audio_stream_end.total_samples equal what was sent."),
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
    if kind in ("dropped_samples", "repeated_samples", "passthrough", "sample_rate_or_channels", "pre_echo"):
        return "HIGH"
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
                    cache[path] = read_float_wav(path)[0]
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
    for st in list_streams(run_dir):
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
        end = st.end or {}
        check_len = ended in LENGTH_CHECKED_ENDINGS
        expected = (len(source) - offset) if (check_len and source is not None) else None
        declared = end.get("total_samples") if ended == "completed" else None
        # a seek position travels in seconds: when it falls between two frames,
        # whether the server floors or rounds it is its business (+-1 frame)
        between = abs(float(pos or 0.0) * sr - offset) > 1e-6
        res = analyse_capture(x, sr, b, source=source, source_offset=offset, enhanced=(stype == "enhanced"),
                              expected_frames=expected, declared_total=declared,
                              length_tolerance=1 if between else 0)
        defects = list(res.defects)
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
    findings = [_finding(key, items, streams_by_type, captures, run_dir, plots) for key, items in sorted(groups.items())]
    metrics = {"audio_findings": float(len(findings)), "audio_streams_analysed": float(n_streams),
               "audio_boundaries_checked": float(n_boundaries), "audio_defects": float(n_defects)}
    for stype in sorted(played - {"unknown"}):
        metrics[f"audio_streams_analysed_{stype}"] = float(streams_by_type.get(stype, 0))
    if played:
        # a path whose every stream errored or stopped before audio: no audio
        # finding there means nothing was checked, not that it is clean
        metrics["audio_stream_types_unanalysed"] = float(sum(1 for t in played - {"unknown"}
                                                             if not streams_by_type.get(t)))
    return findings, metrics


def _finding(key: str, items: list[dict[str, Any]], streams_by_type: dict[str, int], captures: dict,
             run_dir: Path, plots: bool) -> Finding:
    kind, stype, pattern = key.split("|")
    all_d = [(it, d) for it in items for d in it["defects"]]
    worst_it, worst = max(all_d, key=lambda p: (abs(p[1].magnitude) if p[1].unit != "dBFS" else p[1].magnitude, p[1].score))
    every = pattern == "every-boundary" and len(items) == streams_by_type.get(stype, 0)
    title, impact, fix = TEXT[kind]
    n_b = len({(it["stream"], d.boundary_index) for it, d in all_d if d.boundary_index is not None})
    evidence = [f"{len(items)} of {streams_by_type.get(stype, 0)} {stype} stream(s) show it; "
                f"{n_b} boundary instance(s); pattern: {pattern}"]
    for it, d in all_d[:20]:
        where = f"boundary {d.boundary_index} " if d.boundary_index is not None else ""
        evidence.append(f"stream {it['stream']} ({it['track']}): {where}t={d.time_s:.4f} s, "
                        f"{d.magnitude:.2f} {d.unit}, score {d.score:.1f}, false-alarm rate {d.false_alarm_rate:.2g}")
    if len(all_d) > 20:
        evidence.append(f"... and {len(all_d) - 20} more")
    artifacts = []
    if plots and worst_it["stream"] in captures:
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
        evidence=evidence, figures=figures, artifacts=artifacts, key=key)
