"""The client's own limiter must keep every 1 s window under the server's 10
messages, bursts included (a token bucket with a burst did not)."""
from __future__ import annotations

import time

from scenarios.protocol_client import RateLimiter


def test_no_one_second_window_holds_more_than_six_sends():
    lim = RateLimiter()
    times = []
    for _ in range(20):
        lim.wait()
        times.append(time.monotonic())
    worst = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert worst <= 6, worst
    assert times[-1] - times[0] < 4.5  # and it does not over-throttle: 20 sends in ~3.6 s
