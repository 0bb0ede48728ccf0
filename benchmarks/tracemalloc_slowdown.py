"""How much tracemalloc slows allocation-dense Python, by frames recorded.

The agent measures this ratio in the target before --trace-memory starts
(instrument.agent.memtrace.measure_slowdown) and the analysis uses it to tell
a stall tracing may have made from one it cannot have. This prints the
ratio for several frame counts, the counts interleaved round by round so
machine drift hits them alike, and per count the median and range over the
rounds. Each ratio is CPU time of this thread, traced over bare, measured
side by side in the same call.

    python benchmarks/tracemalloc_slowdown.py [--rounds 7] [--frames 1,5,10,25]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from instrument.agent.memtrace import measure_slowdown  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--frames", default="1,5,10,25")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.frames.split(",")]
    ratios: dict[int, list[float]] = {c: [] for c in counts}
    for _ in range(args.rounds):
        for c in counts:
            ratios[c].append(measure_slowdown(c))
    print(f"tracemalloc slowdown of the agent's stand-in workload, {args.rounds} rounds interleaved")
    print(f"{'frames':>6}  {'median':>7}  {'min':>6}  {'max':>6}")
    for c in counts:
        r = ratios[c]
        print(f"{c:>6}  {statistics.median(r):>6.2f}x  {min(r):>5.2f}x  {max(r):>5.2f}x")
    base = statistics.median(ratios[counts[0]])
    for c in counts[1:]:
        print(f"frames {c} vs {counts[0]}: {statistics.median(ratios[c]) / base:.2f}x the slowdown")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
