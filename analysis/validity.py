"""Is a run worth judging? The causes that make a run INVALID however clean
its findings look: nothing analysed of a stream type it played, fewer users
than requested, an analysis family that failed, a check that errored, a
target that stopped answering. Pure: run.json, metrics and the load
generator's progress files in, figures and one-line causes out.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .model import Finding, Location

# checks whose "error" outcome is itself the measurement (no fresh stream after
# the storm is the finding analysis.checks reports), not a check that could not run
_OUTCOME_IS_FINDING = {"recovery"}


def users_started(run_dir: Path) -> int | None:
    """Most users the load generator ever had running: the largest `users_max`
    any Locust process recorded (a master's count includes its workers')."""
    best = None
    for p in Path(run_dir, "load").glob("progress-*.json"):
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        n = d.get("users_max", d.get("users"))
        if isinstance(n, int):
            best = n if best is None else max(best, n)
    return best


def hang(run: dict[str, Any]) -> str | None:
    """The liveness probe's hang, if it counts: the load was ended by it, or
    the target never answered again. A target that went silent for a while
    after the load (e.g. while a check made it build its OpenAPI schema on
    a starved CPU) and then answered was slow, not hung: its silence stays a
    figure (liveness_unanswered_max_s), not a cause."""
    live = run.get("liveness") or {}
    if not live.get("hang"):
        return None
    if live.get("recovered") and run.get("load_outcome") != "target_hung":
        return None
    return str(live["hang"])


def errored_checks(run: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, res in (run.get("checks") or {}).items():
        if isinstance(res, dict) and res.get("outcome") == "error" and name not in _OUTCOME_IS_FINDING:
            out[name] = str(res.get("error") or "no reason recorded")
    return out


def validity_figures(run: dict[str, Any], errors: list[str], run_dir: Path | None = None) -> dict[str, float]:
    figs: dict[str, float] = {"analysis_errors": float(len(errors)),
                              "checks_errored": float(len(errored_checks(run)))}
    users = (run.get("options") or {}).get("users")
    if isinstance(users, dict) and users:
        figs["users_requested"] = float(sum(users.values()))
    if run_dir is not None and (n := users_started(run_dir)) is not None:
        figs["users_started"] = float(n)
    live = run.get("liveness") or {}
    if "unanswered_max_s" in live:
        figs["liveness_unanswered_max_s"] = float(live["unanswered_max_s"])
    return figs


def invalid_causes(run: dict[str, Any], metrics: dict[str, Any], errors: list[str]) -> list[str]:
    """One short phrase per cause, most fundamental first."""
    causes = []
    if (h := hang(run)) is not None:
        causes.append(h)
    for e in errors:
        causes.append(f"analysis family failed: {e}")
    for name, why in errored_checks(run).items():
        causes.append(f"check {name} errored: {why}")
    req, got = metrics.get("users_requested"), metrics.get("users_started")
    if req is not None and (got is None or got < req) and run.get("status") in (None, "ok"):
        causes.append(f"only {int(got or 0)} of {int(req)} requested users ever started")
    dead = sorted(k.rsplit("_", 1)[-1] for k, v in metrics.items()
                  if k.startswith("audio_streams_analysed_") and not v)
    if dead:
        causes.append(f"no analysed audio of stream type(s) played: {', '.join(dead)}")
    return causes


def hang_finding(run_dir: Path, run: dict[str, Any]) -> Finding | None:
    """The target stopped answering health and WebSocket pings: one CRITICAL
    finding, with the agent's last stacks when it could dump them (a loop
    hung for 10 s makes the agent write all threads' stacks to
    agent/faulthandler.log; a SIGSTOPped process runs no code and cannot)."""
    live = run.get("liveness") or {}
    if hang(run) is None:
        return None
    stacks = ""
    fh = Path(run_dir, "agent", "faulthandler.log")
    if fh.is_file():
        stacks = fh.read_text(errors="replace").strip()
    evidence = [live["hang"]]
    if live.get("process_state"):
        evidence.append(f"target process state at detection: {live['process_state']}")
    if stacks:
        evidence.append("agent's last stacks (agent/faulthandler.log):\n" + "\n".join(stacks.splitlines()[-40:]))
    else:
        evidence.append("no stacks: the agent could not dump them"
                        + (" (the process was stopped and runs no code)" if live.get("stopped") else ""))
    return Finding(
        kind="target_hang", title="The target stopped answering (health and WebSocket ping)",
        severity="CRITICAL", dimension="Error Handling",
        description=f"{live['hang']}. Every client froze meanwhile.",
        impact="A frozen backend serves nobody; a release gate must not pass it.",
        suggested_fix="Find what holds the event loop (see the stacks); never block it or wait unboundedly.",
        location=Location(scenario=run.get("scenario"), stream="liveness",
                          time_s=float(live.get("since_s") or 0.0)),
        evidence=evidence, figures={"unanswered_s": float(live.get("unanswered_max_s") or 0.0)}, key="target_hang",
    )
