"""The reference backend under the real agent, as a run launches it, with its
tracks scanned and the real process sampler running: the bed the post-load
checks' known answers stand on."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from instrument.procs import OwnedProcess, free_port, wait_for_health
from instrument.sampler import ProcessSampler
from instrument.targets import reference_target
from scenarios import tracks as tracks_mod


@contextlib.contextmanager
def agent_reference(run_dir: Path, inject: str, track_names: list[str], seconds: float,
                    env_extra: dict[str, str] | None = None) -> Iterator[tuple[str, list[dict], OwnedProcess]]:
    """Yields (base_url, tracks, target process); stops the sampler and the target after."""
    target = reference_target(frozenset([inject]) if inject else frozenset())
    env = {**target.process_env(run_dir), **(env_extra or {})}
    port = free_port()
    argv = target.agent_argv(port=port, run_dir=run_dir, loop="asyncio", stall_ms=50, trace_memory=False,
                             trace_frames=25, profile="none", monitor_port=None)
    proc = OwnedProcess("target", argv, cwd=target.app_dir, env=env, log=run_dir / "target.log")
    sampler = None
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(f"{base}/api/health", proc, 60)
        tracks = tracks_mod.write_tracks(track_names, run_dir / "home", run_dir, seconds=seconds)
        tracks_mod.scan_and_match(base, tracks, run_dir / "home" / "Music" / tracks_mod.MUSIC_SUBDIR)
        tracks_mod.save_manifest(tracks, run_dir)
        sampler = ProcessSampler(proc.pid, run_dir / "samples.jsonl").start()
        yield base, tracks, proc
    finally:
        if sampler:
            sampler.stop()
        proc.stop(grace_s=10)
