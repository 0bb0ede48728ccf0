"""The scenario catalogue: what load each named scenario drives.

A scenario is data: which Locust user classes run, how many of each, for how
long, with which options. Users override users/spawn rate/duration and any
option with `--scenario-opt key=value`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    users: dict[str, int]  # Locust user class -> fixed count
    duration_s: float
    spawn_rate: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)
    tracks: tuple[str, ...] = ("timecode", "pink", "sweep", "sine")
    checks: tuple[str, ...] = ()  # post-load checks run by the wrapper (see instrument.checks)

    def total_users(self) -> int:
        return sum(self.users.values())


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "smoke",
            "one normal and one enhanced stream of a short track, start to end: does anything work "
            "(each stream plays to its end under a per-stream timeout, reported when it fires)",
            {"Listener": 1, "EnhancedListener": 1},
            duration_s=20,
            options={"plays_per_user": 1, "play_to_end": True, "stream_timeout_s": 300},
            tracks=("timecode",),
        ),
        Scenario(
            "concurrent-tracks",
            "N browser-like listeners streaming different tracks at once, enhanced and normal mixed",
            {"Listener": 3, "EnhancedListener": 3, "Browser": 1},
            duration_s=60,
        ),
        Scenario(
            "slow-client",
            "browser listeners beside consumers reading at a fraction of real time, one that stops "
            "reading entirely, a buffer_full/buffer_ready user, and one person browsing the library; "
            "then the backpressure check (memory held per client that stops reading)",
            {"Listener": 1, "EnhancedListener": 1, "SlowListener": 1, "StalledListener": 1, "FlowControlListener": 1,
             "Browser": 1},
            duration_s=45,
            options={"slow_read_rate": 0.25, "stall_after_s": 1.0, "flow_buffer_s": 20.0},
            checks=("backpressure",),
        ),
        Scenario(
            "disconnect-storm",
            "listeners that drop the TCP connection mid-chunk, again and again, and browsers that reconnect "
            "and resume at the position played so far; then a recovery check (a fresh stream succeeds, memory "
            "and tasks come back)",
            {"Disconnector": 4, "Reconnector": 2},
            duration_s=45,
            options={"cycle_pause_s": 0.05},
            checks=("recovery",),
        ),
        Scenario(
            "seek-storm",
            "rapid seeks inside a stream, including while a chunk is in flight, positioned as the web client "
            "does (enhanced: seek with preset/intensity; normal: play_normal at start_position), and resumes "
            "after a dropped connection",
            {"Seeker": 3, "Reconnector": 1, "Listener": 1},
            duration_s=40,
            options={"seeks_per_play": 6},
        ),
        Scenario(
            "track-switch",
            "new play commands on the same connection while a stream is still arriving",
            {"Switcher": 3, "Listener": 1},
            duration_s=40,
        ),
        Scenario(
            "library-browse",
            "REST browsing and paging of the library at realistic rates while one listener streams",
            {"Browser": 8, "Listener": 1},
            duration_s=30,
        ),
        Scenario(
            "soak",
            "a long mixed load (listeners, seekers, disconnects, browsing) to expose leaks",
            {"Listener": 2, "EnhancedListener": 1, "Seeker": 1, "Disconnector": 2, "Browser": 2},
            duration_s=600,
            checks=("recovery",),
        ),
        Scenario(
            "release",
            "the standard suite a release gate runs: mixed listeners, a slow consumer, disconnects, "
            "seeks, resumes after a dropped connection and browsing over all six test tracks; then a quiet truth "
            "phase (each track alone on each path, to its end), recovery and dynamic checks",
            {"Listener": 2, "EnhancedListener": 2, "SlowListener": 1, "Disconnector": 2, "Seeker": 1, "Reconnector": 1,
             "Browser": 2},
            duration_s=90,
            tracks=("timecode", "pink", "sweep", "sine", "silence-lead", "short"),
            checks=("truth", "recovery", "openapi", "origins", "bad_files", "ws_contract", "isolation", "socket_input",
                    # stream_slots may use up a leaking server's slots: last before the restart that gives them back
                    "backpressure", "path_traversal", "concurrent_writes", "stream_slots", "crash_restart", "shutdown"),
        ),
    ]
}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario '{name}' (known: {', '.join(SCENARIOS)})") from None


def scale_users(s: Scenario, users: int | None) -> dict[str, int]:
    """Spread an overridden user count over the scenario's classes in the same
    proportions, keeping at least one of each class."""
    if not users:
        return dict(s.users)
    total = s.total_users()
    out = {k: max(1, round(v * users / total)) for k, v in s.users.items()}
    return out


# Seconds a user needs from its start to a first stream worth analysing:
# connect, play, the first chunk (time to first audio is well under 1 s on a
# healthy backend) and a couple of seconds of audio after it.
FIRST_STREAM_S = 3.0


def placement_problem(s: Scenario, users: dict[str, int], duration_s: float, spawn_rate: float) -> str | None:
    """Why this many users cannot all start and stream within the duration,
    or None. Users start at `spawn_rate` per second; the last one started
    still needs FIRST_STREAM_S before the load ends."""
    if duration_s < FIRST_STREAM_S:
        return (f"--duration {duration_s:g} s is too short for the scenario's first stream "
                f"(at least {FIRST_STREAM_S:g} s)")
    total = sum(users.values())
    most = 1 + int(spawn_rate * (duration_s - FIRST_STREAM_S))
    if total > most:
        return (f"--users {total}: at {spawn_rate:g} users/s only {most} can start and still stream within "
                f"--duration {duration_s:g} s (raise --duration or --spawn-rate)")
    return None
