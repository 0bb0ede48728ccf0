"""One sentence on what the tool itself cost the run, so a reader can judge
every figure beside it."""
from __future__ import annotations

from typing import Any


def instrumentation_line(metrics: dict[str, Any]) -> str | None:
    pct = metrics.get("instrumentation_cpu_pct")
    n = int(metrics.get("loop_instrumentation_stall_count") or 0)
    if pct is None and not n and not metrics.get("loop_traced_stall_count"):
        return None
    parts = []
    if pct is not None:
        parts.append(f"Instrumentation used {float(pct):.2f}% of the target's CPU (the agent's own threads)")
    if n:
        parts.append(f"{n} loop delay(s) of {float(metrics.get('loop_instrumentation_stall_total_ms') or 0):.0f} ms "
                     "in all were the agent's own work and are not findings")
    t = int(metrics.get("loop_traced_stall_count") or 0)
    if t:
        parts.append(f"{t} loop stall(s) of up to {float(metrics.get('loop_traced_stall_max_ms') or 0):.0f} ms were "
                     "short enough that tracemalloc's slowdown alone could have made them: not judged on this run; "
                     "run again without --trace-memory to judge them")
    return "; ".join(parts) + "."


def coverage_line(metrics: dict[str, Any]) -> str | None:
    if metrics.get("coverage_lines_pct") is None:
        return None
    return (f"Runtime coverage (--coverage): {float(metrics['coverage_lines_pct']):.1f}% of the target's own lines ran; "
            f"routes reached {metrics.get('coverage_routes_reached')} of {metrics.get('coverage_routes_total')}, "
            f"WebSocket message handlers {metrics.get('coverage_ws_handlers_reached')} of "
            f"{metrics.get('coverage_ws_handlers_total')} (tables in coverage.md).")
