"""Two runs of one scenario side by side (e.g. permessage-deflate on and
off): the figures users ask about, and the ratio between them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIGURES = [
    ("throughput_mb_s", "PCM throughput (MB/s)"),
    ("delivery_rate_x_p50", "delivery rate p50 (x real time)"),
    ("ttfa_p50_ms", "TTFA p50 (ms)"),
    ("ttfa_p95_ms", "TTFA p95 (ms)"),
    ("rest_latency_p50_ms", "REST latency p50 during load (ms)"),
    ("rest_latency_p95_ms", "REST latency p95 during load (ms)"),
    ("loop_busy_fraction", "loop busy fraction"),
    ("loop_lag_p99_ms", "loop lag p99 (ms)"),
    ("loop_stall_count", "loop stalls"),
    ("loop_stall_max_ms", "max loop stall (ms)"),
    ("target_cpu_mean_percent", "backend CPU mean (%)"),
    ("rss_peak_mb", "backend RSS peak (MB)"),
    ("underruns", "client underruns"),
    ("findings.total", "findings"),
]


def _metrics(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def render(runs: list[tuple[str, Path]], out: Path, title: str) -> Path:
    ms = [(label, _metrics(d)) for label, d in runs]
    head = "| figure | " + " | ".join(label for label, _ in ms) + " | ratio |"
    lines = [f"# {title}", "", head, "|" + "---|" * (len(ms) + 2)]
    for key, name in FIGURES:
        vals = [m.get(key) for _, m in ms]
        ratio = ""
        if len(vals) == 2 and all(isinstance(v, (int, float)) for v in vals) and vals[1]:
            ratio = f"{vals[0] / vals[1]:.2f}"
        lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in vals) + f" | {ratio} |")
    lines += ["", "Runs: " + ", ".join(f"{label}: `{d.name}`" for label, d in runs), ""]
    out.write_text("\n".join(lines))
    return out
