from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil

from tests import host_share

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None,
            alone: bool = False) -> subprocess.CompletedProcess:
    """env: added to this process's environment (the wrapper passes it on to the target).
    alone: nothing the other xdist workers run shares the machine with this run (tests/host_share.py)."""
    # 40 s tracks keep three enhanced boundaries (15, 25, 35 s) and halve the suite's time
    with host_share.share(exclusive=alone):
        return subprocess.run([sys.executable, "-m", "instrument.run", "--quiet", "--track-seconds", "40", *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **env} if env else None)


def shared_dir(tmp_path_factory, worker_id: str) -> Path:
    """This session's directory for what the xdist workers share (each
    worker's basetemp is popen-gwN under the session's; without xdist,
    worker_id is "master" and the basetemp is the session's)."""
    root = tmp_path_factory.getbasetemp()
    shared = (root if worker_id == "master" else root.parent) / "shared-runs"
    shared.mkdir(exist_ok=True)
    return shared


def shared_run(tmp_path_factory, worker_id: str, name: str, *args: str, timeout: float = 300, alone: bool = False,
               env: dict[str, str] | None = None) -> tuple[Path, subprocess.CompletedProcess]:
    """One run of `args` for every test file that asks for `name`, on any
    xdist worker: the first to ask makes it, the others wait for it and read
    it (pytest-xdist's recipe for a session fixture that runs once). Test
    files whose assertions hold of the same run share it instead of each
    paying for its own. Its directory is read, never written, by the tests."""
    shared = shared_dir(tmp_path_factory, worker_id)
    out, done = shared / name, shared / f"{name}.json"
    # the per-run lock's holder may be waiting for the machine to itself:
    # this test's own share of it is let go while it waits (host_share)
    with host_share.released(), host_share.flocked(shared / f"{name}.lock"):
        if not done.exists():
            r = run_cli(*args, "--out", str(out), timeout=timeout, alone=alone, env=env)
            done.write_text(json.dumps({"args": r.args, "returncode": r.returncode,
                                        "stdout": r.stdout, "stderr": r.stderr}))
    d = json.loads(done.read_text())
    return out, subprocess.CompletedProcess(d["args"], d["returncode"], d["stdout"], d["stderr"])


def sentinel_home(home: Path) -> Path:
    """A HOME for the wrapper that it must leave byte-identical: music, a
    config file, notes and a symlink (the same tree whoever makes it)."""
    if not home.exists():
        (home / "Music" / "album").mkdir(parents=True)
        (home / "Music" / "album" / "song.wav").write_bytes(b"RIFF" + bytes(range(256)) * 4)
        (home / ".config").mkdir()
        (home / ".config" / "settings.json").write_text('{"user": "sentinel"}')
        (home / "notes.txt").write_text("do not touch\n")
        (home / "link-to-notes").symlink_to(home / "notes.txt")
    return home


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


# every check of the release scenario but backpressure: it holds readers for
# 2 x 6 s, and test_scenarios.py's slow-client run already runs it on the clean reference
RELEASE_CHECKS = ("truth,recovery,openapi,origins,bad_files,ws_contract,isolation,socket_input,path_traversal,"
                  "concurrent_writes,stream_slots,crash_restart,shutdown")


def release_clean(tmp_path_factory, worker_id: str) -> tuple[Path, subprocess.CompletedProcess, Path, dict[str, str]]:
    """The release scenario on the clean reference, once per session, with a
    sentinel HOME for the wrapper: test_scenario_release.py's run of the
    scenario and test_lifecycle_checks.py's clean control. (out, result, the
    sentinel HOME, its digest before the run)."""
    shared = shared_dir(tmp_path_factory, worker_id)
    with host_share.flocked(shared / "release-home.lock"):
        fresh = not (shared / "release-home").exists()
        home = sentinel_home(shared / "release-home")
        if fresh:
            (shared / "release-home.json").write_text(json.dumps(tree_digest(home)))
    out, r = shared_run(tmp_path_factory, worker_id, "release-clean", "--scenario", "release", "--duration", "6",
                        "--track-seconds", "20", "--checks", RELEASE_CHECKS, env={"HOME": str(home)})
    return out, r, home, json.loads((shared / "release-home.json").read_text())


CONCURRENT_TRACKS_CLEAN = ("--scenario", "concurrent-tracks", "--duration", "12")


def concurrent_tracks_clean(tmp_path_factory, worker_id: str) -> tuple[Path, subprocess.CompletedProcess]:
    """concurrent-tracks on the clean reference, once per session, with the
    machine to itself (tests/host_share.py): test_instrumentation.py's clean control
    and test_scenarios.py's run of the scenario."""
    return shared_run(tmp_path_factory, worker_id, "concurrent-tracks-clean", *CONCURRENT_TRACKS_CLEAN, alone=True)

# smoke runs of the reference with injections, by name -> the injections that
# share the run (test_one_finding_per_injection.py says why these pair up);
# other files' known answers for one of them read the same run
INJECTION_RUNS: dict[str, tuple[str, ...]] = {
    "repeat+blocking": ("repeat-overlap", "blocking-send"),
    "drop+slow-start": ("drop-samples", "slow-start"),
    "gap+timeout": ("gap", "chunk-timeout"),
    "level": ("level-step",),
    "click": ("boundary-click",),
    "crossfade": ("linear-crossfade-dip",),
}


def injection_run(tmp_path_factory, worker_id: str, name: str) -> tuple[Path, subprocess.CompletedProcess]:
    """The 15 s smoke run of INJECTION_RUNS[name], once per session."""
    return shared_run(tmp_path_factory, worker_id, "smoke-" + name.replace("+", "-"), "--scenario", "smoke",
                      "--duration", "15", "--inject", ",".join(INJECTION_RUNS[name]))


def own_take(path: Path) -> Path:
    """A user's own file for a run's --track-file: 24 s of a modulated 330 Hz
    tone and noise, 48 kHz FLAC, deterministic (so whichever worker writes it
    writes the same bytes)."""
    import numpy as np
    import soundfile as sf

    if not path.exists():
        sr = 48000
        t = np.arange(24 * sr) / sr
        x = np.stack([0.3 * np.sin(2 * np.pi * 330 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t)),
                      0.2 * np.random.default_rng(1).standard_normal(len(t))], axis=1).astype(np.float32)
        sf.write(path, x, sr, subtype="PCM_24")
    return path


def seek_storm_clean(tmp_path_factory, worker_id: str) -> tuple[Path, subprocess.CompletedProcess]:
    """seek-storm on the clean reference with chosen tracks and an own file
    (test_positioning_run.py's known answers; test_scenarios.py's seek-storm
    checks): three users, one of each class: the known answers need one of
    each, not a loaded host."""
    shared = shared_dir(tmp_path_factory, worker_id)
    with host_share.flocked(shared / "own-take.lock"):
        take = own_take(shared / "own take.flac")
    return shared_run(tmp_path_factory, worker_id, "seek-storm-clean", "--scenario", "seek-storm", "--duration", "12",
                      "--users", "3", "--tracks", "short,sine", "--track-file", str(take))


def verdict_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stdout.strip().splitlines()
    assert lines, r.stderr
    return lines[-1]


def leftovers(run_dir: Path) -> list[str]:
    """Processes still running that belong to this run (their command line
    names its directory)."""
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if str(run_dir) in cmd:
            out.append(f"{p.info['pid']}: {cmd[:160]}")
    return out


def fake_auralis(root: Path, main_py: str) -> Path:
    """A directory shaped like an Auralis checkout whose backend is `main_py`."""
    backend = root / "auralis-web" / "backend"
    backend.mkdir(parents=True)
    (backend / "main.py").write_text(main_py)
    return root


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())
