"""The HTML report's plots, drawn from run-directory data with matplotlib's
Agg backend and returned as base64 PNG so the report stays one file.

Plots only draw what was recorded; they compute nothing that could be a
measurement. Each plot function returns a `Plot` or a `Plot` with `note`
saying why it is absent (no data, a run that died early), never raises for
missing data.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from analysis.rundir import AGENT, SAMPLES, iter_jsonl  # noqa: E402

from .context import RunContext  # noqa: E402

DPI = 90
MAX_STREAM_LINES = 12  # more than this and a buffer plot is a blur
MAX_ARTIFACT_BYTES = 4 * 1024 * 1024


@dataclass
class Plot:
    title: str
    png_b64: str | None = None
    note: str = ""
    caption: str = ""


# Fixed margins per figure shape, not bbox_inches="tight": a tight box draws
# the whole figure once to measure it and again to save it, 40% of a
# report's plotting (four plots a run); these labels barely change length.
WIDE = dict(left=0.07, right=0.98, top=0.95, bottom=0.15)  # one row of 10 x 3.2-3.4 in
TALL = dict(left=0.07, right=0.98, top=0.97, bottom=0.08, hspace=0.12)  # three stacked axes, 10 x 6 in
PAIR = dict(left=0.06, right=0.98, top=0.91, bottom=0.15, wspace=0.18)  # two titled axes side by side


def _to_b64(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plain_log_ticks(ax: Any) -> None:
    """Count labels on a log axis as plain numbers (1, 10, 100): the default
    10^n labels are mathtext, whose first parse in a process costs ~0.5 s,
    a third of a short run's report."""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _t0(ctx: RunContext, *series: list[float]) -> float:
    """The run's start: run.json's start when present, else the
    earliest timestamp seen in any series plotted."""
    start = ctx.started_unix
    firsts = [min(s) for s in series if s]
    # a start after the first sample means the clocks disagree: trust the data
    if start is not None and (not firsts or start <= min(firsts)):
        return start
    return min(firsts) if firsts else 0.0


def _num(d: dict[str, Any], *keys: str) -> float | None:
    """The first numeric field of `keys`, also looked up inside a nested
    "lag" object (the agent's lag record may group its percentiles)."""
    nested = d.get("lag") if isinstance(d.get("lag"), dict) else {}
    for k in keys:
        v = d.get(k, nested.get(k))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def loop_stalls(ctx: RunContext) -> Plot:
    title = "Event-loop stalls and lag over time"
    stalls = [s for s in iter_jsonl(ctx.run_dir / AGENT / "stalls.jsonl") if _num(s, "t") is not None]
    lag = [r for r in iter_jsonl(ctx.run_dir / AGENT / "lag.jsonl") if _num(r, "t") is not None]
    if not stalls and not lag:
        return Plot(title, note="no agent data (agent/stalls.jsonl, agent/lag.jsonl) in this run")
    t0 = _t0(ctx, [s["t"] for s in stalls], [r["t"] for r in lag])
    fig, ax = plt.subplots(figsize=(10, 3.4))
    fig.subplots_adjust(**WIDE)
    if lag:
        tl = [r["t"] - t0 for r in lag]
        p99 = [_num(r, "p99_ms", "lag_p99_ms", "p99") for r in lag]
        p50 = [_num(r, "p50_ms", "lag_p50_ms", "p50") for r in lag]
        if any(v is not None for v in p99):
            ax.plot(tl, [v if v is not None else float("nan") for v in p99], color="#8888cc", lw=1, label="lag p99")
        if any(v is not None for v in p50):
            ax.plot(tl, [v if v is not None else float("nan") for v in p50], color="#bbbbdd", lw=1, label="lag p50")
    if stalls:
        ts = [s["t"] - t0 for s in stalls]
        ds = [_num(s, "duration_ms") or 0.0 for s in stalls]
        ax.vlines(ts, 0, ds, color="#c0392b", lw=1.5)
        ax.scatter(ts, ds, color="#c0392b", s=14, zorder=3, label=f"stall ({len(stalls)})")
        worst = max(range(len(ds)), key=ds.__getitem__)
        loc = stalls[worst].get("location") or {}
        if loc.get("function"):
            where = f"{Path(str(loc.get('file', ''))).name}:{loc.get('line', '')} {loc['function']}"
            ax.annotate(where, (ts[worst], ds[worst]), textcoords="offset points", xytext=(6, -4), fontsize=8)
    ax.set_xlabel("time since run start (s)")
    ax.set_ylabel("ms")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return Plot(title, _to_b64(fig), caption="Each red stem is one stall, its height how long the loop was blocked.")


def process_samples(ctx: RunContext) -> Plot:
    title = "Process resources: RSS, CPU, threads"
    rows = [r for r in iter_jsonl(ctx.run_dir / SAMPLES) if _num(r, "t") is not None]
    if not rows:
        return Plot(title, note="no process samples (samples.jsonl) in this run")
    t0 = _t0(ctx, [r["t"] for r in rows])
    t = [r["t"] - t0 for r in rows]

    def series(*keys: str, scale: float = 1.0) -> list[float]:
        return [(v * scale) if (v := _num(r, *keys)) is not None else float("nan") for r in rows]

    fig, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True)
    fig.subplots_adjust(**TALL)
    axes[0].plot(t, series("rss", scale=1 / 2**20), label="RSS", color="#2c7fb8")
    if any(_num(r, "uss") is not None for r in rows):
        axes[0].plot(t, series("uss", scale=1 / 2**20), label="USS", color="#7fcdbb")
    axes[0].set_ylabel("MiB")
    axes[0].legend(loc="upper left", fontsize=8)
    axes[1].plot(t, series("cpu_percent"), color="#d95f0e")
    axes[1].set_ylabel("CPU %")
    axes[2].plot(t, series("threads"), label="threads", color="#31a354")
    if any(_num(r, "fds") is not None for r in rows):
        axes[2].plot(t, series("fds"), label="fds", color="#756bb1")
    axes[2].set_ylabel("count")
    axes[2].legend(loc="upper left", fontsize=8)
    axes[2].set_xlabel("time since run start (s)")
    for a in axes:
        a.grid(alpha=0.3)
    return Plot(title, _to_b64(fig))


def _stream_timings(ctx: RunContext) -> tuple[list[Any] | None, str]:
    try:
        from analysis.client import stream_timings  # written by the lead; may not exist yet
    except ImportError:
        return None, "client stream timings are not available in this version (analysis.client missing)"
    try:
        return list(stream_timings(ctx.run_dir)), ""
    except Exception as e:  # a damaged capture must not take the whole report down
        return None, f"client stream timings could not be read: {e}"


def ttfa_and_gaps(ctx: RunContext, timings: list[Any] | None, why: str) -> Plot:
    title = "Time to first audio and frame-gap distributions"
    if timings is None:
        return Plot(title, note=why)
    ttfa = [t.ttfa_s * 1000 for t in timings if getattr(t, "ttfa_s", None) is not None]
    gaps = [g * 1000 for t in timings for g in (getattr(t, "frame_gaps_s", None) or [])]
    if not ttfa and not gaps:
        return Plot(title, note="no stream delivered audio in this run")
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
    fig.subplots_adjust(**PAIR)
    if ttfa:
        a.hist(ttfa, bins=min(30, max(5, len(ttfa))), color="#3182bd")
    a.set_title(f"time to first audio ({len(ttfa)} streams)", fontsize=9)
    a.set_xlabel("ms")
    if gaps:
        b.hist(gaps, bins=50, color="#e6550d", log=True)
        _plain_log_ticks(b)
    b.set_title(f"gap between audio frames ({len(gaps)} gaps)", fontsize=9)
    b.set_xlabel("ms")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    return Plot(title, _to_b64(fig))


def buffer_levels(ctx: RunContext, timings: list[Any] | None, why: str) -> Plot:
    title = "Simulated client buffer level per stream"
    if timings is None:
        return Plot(title, note=why)
    usable = [t for t in timings if getattr(t, "buffer_t", None) and getattr(t, "buffer_level_s", None)]
    if not usable:
        return Plot(title, note="no buffer simulation data in this run")
    fig, ax = plt.subplots(figsize=(10, 3.4))
    fig.subplots_adjust(**WIDE)
    for t in usable[:MAX_STREAM_LINES]:
        # buffer_t counts from the stream's first frame; absolute clocks are re-based the same way
        first = t.buffer_t[0] if t.buffer_t[0] > 1e6 else 0.0
        xs = [x - first for x in t.buffer_t]
        under = getattr(t, "underruns", 0) or 0
        label = f"{t.stream_id}" + (f" ({under} underruns)" if under else "")
        ax.plot(xs, t.buffer_level_s, lw=1, label=label)
    ax.axhline(0, color="#555555", lw=0.8, ls="--")
    ax.set_xlabel("time since the stream's first frame (s)")
    ax.set_ylabel("buffered audio (s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    caption = "" if len(usable) <= MAX_STREAM_LINES else f"first {MAX_STREAM_LINES} of {len(usable)} streams shown"
    return Plot(title, _to_b64(fig), caption=caption)


def run_plots(ctx: RunContext) -> list[Plot]:
    timings, why = _stream_timings(ctx)
    makers: list[Callable[[], Plot]] = [
        lambda: loop_stalls(ctx),
        lambda: process_samples(ctx),
        lambda: ttfa_and_gaps(ctx, timings, why),
        lambda: buffer_levels(ctx, timings, why),
    ]
    plots = []
    for make in makers:
        try:
            plots.append(make())
        except Exception as e:  # one malformed file costs one plot, not the report
            plt.close("all")
            plots.append(Plot("plot failed", note=f"{type(e).__name__}: {e}"))
    return plots


def artifact_image(ctx: RunContext, rel: str) -> str | None:
    """An artifact PNG as base64, if it lies inside the run directory."""
    if not rel.lower().endswith(".png"):
        return None
    root = ctx.run_dir.resolve()
    p = (root / rel).resolve()
    if root not in p.parents or not p.is_file() or p.stat().st_size > MAX_ARTIFACT_BYTES:
        return None
    return base64.b64encode(p.read_bytes()).decode("ascii")
