"""A synthetic run directory with hand-built findings: a few of each severity
and dimension, with and without code locations, plus the agent, sample and
gate data the renderers read."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analysis.model import Finding, Location, assign_ids, dump_findings

T0 = 1_790_000_000.0  # 2026-09-21, a fixed run start so dates are stable
RUN_DATE = "2026-09-21"
HOME_LEAK = "/" + "home/alice/src/auralis"  # a path a real stack would carry (split: the repo guard greps for it)


def hand_findings() -> list[Finding]:
    fs = [
        Finding(
            kind="loop_stall",
            title="Synchronous WAV encode blocks the event loop for 480 ms per chunk",
            severity="CRITICAL",
            dimension="Performance",
            description="encode_chunk() runs on the event loop; every connected client stalls while it runs.",
            impact="All streams stop receiving frames during each encode; clients underrun.",
            suggested_fix="Move the encode into asyncio.to_thread().",
            location=Location(file="auralis-web/backend/core/encoding/wav_encoder.py", line_start=88, line_end=97, function="encode_chunk"),
            evidence=[
                "42 stalls >= 100 ms, worst 480 ms",
                f"Traceback (most recent call last):\n  File \"{HOME_LEAK}/auralis-web/backend/core/encoding/wav_encoder.py\", line 91, in encode_chunk\n    buf = wave.write(...)",
            ],
            figures={"stall_count": 42, "stall_max_ms": 480.0, "stall_p99_ms": 455.5},
            key="wav_encoder.py:encode_chunk",
        ),
        Finding(
            kind="repeated_samples",
            title="Chunk boundary repeats 4410 samples at every 10 s crossfade",
            severity="HIGH",
            dimension="Chunked Processing",
            description="The overlap region is emitted twice at each chunk boundary.",
            impact="An audible 100 ms stutter every 10 s.",
            suggested_fix="Trim the overlap from the emitted chunk.",
            location=Location(scenario="steady-listeners", stream="s003", time_s=10.0),
            evidence=["boundary at 10.000 s: 4410 samples equal to the previous 4410 (corr 1.000)"],
            figures={"repeated_samples": 4410, "boundaries_affected": 5},
            artifacts=["plots/s003_boundary_10s.png", "streams/s003/audio.wav"],
            key="repeat|4410",
        ),
        Finding(
            kind="ws_disconnect_leak",
            title="Disconnect mid-stream leaks the producer task",
            severity="HIGH",
            dimension="WebSocket Streaming",
            description="The stream task keeps running after the socket closes.",
            impact="Tasks and memory grow with every abandoned stream.",
            suggested_fix="Cancel the producer in the disconnect handler.",
            location=Location(file="auralis-web/backend/core/audio_stream_controller.py", line_start=301, function="stream_audio"),
            evidence=["tasks after 20 disconnects: 20 more than before"],
            figures={"leaked_tasks": 20},
            key="controller|stream_audio",
        ),
        Finding(
            kind="rss_growth",
            title="RSS grows 3.1 MiB per stream and is not returned",
            severity="MEDIUM",
            dimension="Performance",
            description="Resident memory climbs linearly with the number of streams served.",
            impact="Long sessions exhaust memory.",
            suggested_fix="Release per-stream buffers when the stream ends.",
            location=Location(scenario="churn"),
            evidence=["slope 3.1 MiB/stream over 60 streams (r=0.98)"],
            figures={"rss_slope_mib_per_stream": 3.1},
            key="rss|churn",
        ),
        Finding(
            kind="schema_mismatch",
            title="audio_chunk_meta omits | chunk_index on the last chunk",
            severity="MEDIUM",
            dimension="Schema Consistency",
            description="The final chunk's metadata is missing a field the client reads.",
            impact="The client mislabels the last chunk.",
            suggested_fix="Always send chunk_index.",
            location=Location(file="auralis-web/backend/core/stream_messages.py", line_start=40, line_end=52, function="chunk_meta"),
            evidence=["12 of 12 streams: last audio_chunk_meta without chunk_index"],
            key="meta|chunk_index",
        ),
        Finding(
            kind="seek_latency",
            title="Seek answers after 1.9 s at p95",
            severity="LOW",
            dimension="Seek & Buffering",
            description="Seeks wait for the current chunk to finish.",
            impact="Scrubbing feels sluggish.",
            suggested_fix="Cancel the in-flight chunk on seek.",
            location=Location(scenario="seeks", stream="s010", time_s=31.25),
            evidence=["seek p95 1.9 s over 40 seeks"],
            figures={"seek_p95_s": 1.9},
            key="seek|p95",
        ),
        Finding(
            kind="error_500",
            title="Unknown track id answers 500 instead of 404",
            severity="LOW",
            dimension="Error Handling",
            description="GET /api/tracks/999999 raises inside the handler.",
            impact="Clients cannot tell a missing track from a server fault.",
            suggested_fix="Return 404 for unknown ids.",
            location=Location(file="auralis-web/backend/routers/tracks.py", line_start=77, function="get_track"),
            evidence=["3 of 3 requests: HTTP 500"],
            key="tracks|get_track|500",
        ),
    ]
    return assign_ids(fs)


def _boundary_png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.linspace(9.9, 10.1, 2000)
    y = np.sin(2 * np.pi * 440 * t)
    y[t > 10.0] = np.sin(2 * np.pi * 440 * (t[t > 10.0] - 0.1))
    fig, (a, b) = plt.subplots(2, 1, figsize=(6, 3))
    a.plot(t, y, lw=0.6)
    a.axvline(10.0, color="r")
    b.specgram(y, Fs=10000, NFFT=128, noverlap=64)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=60)
    plt.close(fig)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_streams(rd: Path, n: int = 4) -> None:
    """Stream captures as the recorder writes meta.jsonl: a play request out,
    then binary frames in. The last stream is starved (frames slower than 1x)."""
    for k in range(n):
        t = T0 + 2 + k
        rows = [{"t": t, "dir": "out", "kind": "play_enhanced", "msg": {"type": "play_enhanced", "data": {"track_id": 1}}}]
        t += 0.15 + 0.05 * k  # time to first audio
        slow = k == n - 1
        for i in range(40):
            rows.append({"t": t, "dir": "in", "kind": "binary", "bytes": 8820 * 8, "frame_offset": i * 8820, "frames": 8820})
            t += (0.3 if slow else 0.1) + 0.01 * (i % 3)
        write_jsonl(rd / "streams" / f"s{k:03d}" / "meta.jsonl", rows)
        (rd / "streams" / f"s{k:03d}" / "stream.json").write_text(json.dumps({"sample_rate": 44100, "request_t": T0 + 2 + k}))


def make_run_dir(root: Path, *, findings: list[Finding] | None = None, gate: dict | None | bool = True,
                 run: dict | None = None, agent: bool = True, samples: bool = True,
                 streams: bool = True) -> Path:
    rd = root / f"{RUN_DATE}T10-00-00_synthetic"
    rd.mkdir(parents=True, exist_ok=True)
    findings = hand_findings() if findings is None else findings
    (rd / "findings.json").write_text(dump_findings(findings, {"run": rd.name}))
    run_doc = {"name": rd.name, "target": "reference", "scenario": "steady-listeners", "started": T0, "status": "ok"}
    run_doc.update(run or {})
    (rd / "run.json").write_text(json.dumps(run_doc))
    (rd / "metrics.json").write_text(json.dumps({"loop.stall_max_ms": 480.0, "stream.ttfa_p95_s": 0.42, "rss.growth_mib": 186.0}))
    if gate is True:
        gate = {
            "verdict": "FAIL",
            "exit_code": 1,
            "reason": "2 error rules failed",
            "rules": [
                {"name": "no_critical", "expr": "findings.CRITICAL == 0", "severity": "error", "value": 1, "passed": False, "message": "1 CRITICAL finding"},
                {"name": "stall_max", "expr": "loop.stall_max_ms <= 100", "severity": "error", "value": 480.0, "passed": False, "message": "worst stall 480 ms"},
                {"name": "ttfa_p95", "expr": "stream.ttfa_p95_s <= 0.5", "severity": "error", "value": 0.42, "passed": True, "message": "ok"},
                {"name": "rss_growth", "expr": "rss.growth_mib <= 100", "severity": "warn", "value": 186.0, "passed": False, "message": "RSS grew 186 MiB"},
            ],
            "regressions": [],
        }
    if gate:
        (rd / "gate.json").write_text(json.dumps(gate))
    if agent:
        stalls = [{"t": T0 + 5 + 3 * i, "duration_ms": 120 + 40 * (i % 5), "location": {"file": "auralis-web/backend/core/encoding/wav_encoder.py", "line": 91, "function": "encode_chunk"}} for i in range(15)]
        write_jsonl(rd / "agent" / "stalls.jsonl", stalls)
        write_jsonl(rd / "agent" / "lag.jsonl", [{"t": T0 + i, "p50_ms": 1.0 + (i % 3), "p99_ms": 5.0 + (i % 7) * 10, "busy_fraction": 0.3} for i in range(60)])
    if samples:
        rows = [{"t": T0 + i, "rss": (80 + 3 * i) * 2**20, "uss": (70 + 3 * i) * 2**20, "cpu_percent": 20 + (i * 7) % 50, "threads": 12 + i // 10, "fds": 30 + i // 5} for i in range(60)]
        write_jsonl(rd / "samples.jsonl", rows)
        # a torn last line, as a killed sampler leaves it
        with open(rd / "samples.jsonl", "a") as fh:
            fh.write('{"t": 17900000')
    if streams:
        write_streams(rd)
    for f in findings:
        for a in f.artifacts:
            if a.endswith(".png"):
                _boundary_png(rd / a)
    return rd
