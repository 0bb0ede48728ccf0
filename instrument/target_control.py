"""The hook through which a check may end or restart the target the wrapper
launched: kill -9 it (crash_restart), start it again with the same argv,
environment and HOME under the same instrumentation (a new OwnedProcess, so
the wrapper still owns and stops it), or SIGTERM it and watch it go
(shutdown). The wrapper reads `proc` and `sampler` back after the checks."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any, Sequence

from .procs import OwnedProcess, wait_for_health
from .sampler import ProcessSampler


class TargetControl:
    def __init__(self, proc: OwnedProcess, *, argv: Sequence[str], cwd: Path, env: dict[str, str], log: Path,
                 health_url: str, samples: Path, sampler: ProcessSampler | None, startup_timeout_s: float,
                 run_dir: Path | None = None):
        self.proc = proc
        self.run_dir = run_dir if run_dir is not None else samples.parent
        self.argv, self.cwd, self.env, self.log = list(argv), cwd, dict(env), log
        self.health_url = health_url
        self.samples = samples
        self.sampler = sampler
        self.startup_timeout_s = startup_timeout_s
        self.restarts: list[dict[str, Any]] = []
        self.ended_by_check: str | None = None  # the check that ended the target on purpose

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.alive()

    def kill9(self) -> int | None:
        """SIGKILL the target process only (not its group), as a crash does.
        Its children are listed first: `orphans()` then names the ones the
        crash left running."""
        import psutil

        try:
            self._children = [(c.pid, c.create_time()) for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.Error:
            self._children = []
        self._coverage_checkpoint()
        try:
            self.proc.proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            return self.proc.proc.wait(timeout=10)
        except Exception:
            return self.proc.returncode

    def _coverage_checkpoint(self, timeout_s: float = 5.0) -> None:
        """Under --coverage, what this process measured is written before a
        SIGKILL loses it: SIGUSR2 asks the agent, which acknowledges in
        coverage_checkpoint.json (a target without the agent's coverage has
        no such file, and is not signalled)."""
        agent = self.run_dir / "agent"
        if not (agent / "coverage_meta.json").exists():
            return
        ack = agent / "coverage_checkpoint.json"

        def seen() -> tuple[int, int] | None:
            try:
                a = json.loads(ack.read_text())
                return int(a.get("pid", 0)), int(a.get("checkpoints", 0))
            except (OSError, ValueError):
                return None

        before = seen()
        try:
            self.proc.proc.send_signal(signal.SIGUSR2)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now = seen()
            if now is not None and now != before and now[0] == self.proc.proc.pid:
                return
            time.sleep(0.05)

    def orphans(self, kill: bool = True) -> list[int]:
        """Children of the killed process still alive (SIGKILLed when `kill`:
        nothing a run starts may outlive it)."""
        import psutil

        alive = []
        for pid, created in getattr(self, "_children", []):
            try:
                p = psutil.Process(pid)
                if abs(p.create_time() - created) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
                    if kill:
                        p.kill()
            except psutil.Error:
                continue
        return alive

    def restart(self) -> float:
        """Start the target again; seconds until /api/health answered.
        Raises RuntimeError (with the log's tail) when it never gets healthy."""
        self.proc.stop(grace_s=0.5, sig=signal.SIGKILL)  # whatever of the old group is left
        if self.sampler is not None:
            self.sampler.stop()
        t0, wall0 = time.monotonic(), time.time()
        self.proc = OwnedProcess("target", self.argv, cwd=self.cwd, env=self.env, log=self.log)
        self.sampler = ProcessSampler(self.proc.pid, self.samples).start()
        try:
            waited = wait_for_health(self.health_url, self.proc, self.startup_timeout_s)
        except RuntimeError as e:
            raise RuntimeError(f"{e}; log tail: {self.proc.log_tail(6)}") from None
        # the wall-clock window of the start-up we caused: analysis does not blame its stalls on the target
        self.restarts.append({"pid": self.proc.pid, "healthy_s": round(waited, 3),
                              "started_s": round(time.monotonic() - t0, 3), "t_start": wall0, "t_healthy": time.time()})
        return waited

    def terminate(self, by: str, timeout_s: float) -> tuple[float | None, int | None]:
        """SIGTERM the target process only, as a service manager's `kill PID`;
        (seconds until it exited or None, exit code). Nothing is killed here:
        the caller looks at what outlived it first."""
        self.ended_by_check = by
        t0 = time.monotonic()
        try:
            self.proc.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            rc = self.proc.proc.wait(timeout=timeout_s)
            return time.monotonic() - t0, rc
        except Exception:
            return None, None
