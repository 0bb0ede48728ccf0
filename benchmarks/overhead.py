"""What our in-process instrumentation costs the target.

The target is started bare (plain uvicorn), under the agent with the
default instrumentation, with --trace-memory, and with each profiler; each
configuration streams the same track to concurrent clients while REST
requests are timed, and the configurations are interleaved repeat by repeat
so machine drift hits all of them alike. Printed: throughput, time to first
audio and REST latency per configuration and as ratios to bare.

    python benchmarks/overhead.py [--repeats 3] [--clients 3] [--streams-per-client 3]
    # a user's Auralis checkout, its enhanced path with the DSP stand-in, bare vs default:
    python benchmarks/overhead.py --auralis-root PATH --auralis-python PATH --auralis-dsp-standin \
        --enhanced --configs bare,default --clients 1 --streams-per-client 1 --track-seconds 90
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from instrument.procs import OwnedProcess, free_port, stop_all, wait_for_health  # noqa: E402
from scenarios.protocol_client import AuralisSession, ClientProfile  # noqa: E402

CONFIGS = {
    "bare": None,
    "default": [],
    "trace-memory": ["--trace-memory"],
    "pyinstrument": ["--profile", "pyinstrument"],
    "yappi": ["--profile", "yappi"],
    # the default's parts, for when it costs more than it should
    "no-busy-sampling": ["--busy-sample-hz", "0"],
    "stall-100ms": ["--stall-threshold-ms", "100"],
}
DEFAULT_CONFIGS = ("bare", "default", "trace-memory", "pyinstrument", "yappi")


def target_spec(a: argparse.Namespace) -> dict[str, Any]:
    """How to launch the target: the reference, or a user's Auralis checkout."""
    if not a.auralis_root:
        return {"name": "reference", "python": sys.executable, "app": "instrument.reference.app:app",
                "app_dir": ROOT, "code_root": ROOT / "instrument" / "reference", "cwd": ROOT, "pythonpath": [ROOT]}
    root = Path(a.auralis_root).resolve()
    backend = root / "auralis-web" / "backend"
    if not (backend / "main.py").is_file():
        raise SystemExit(f"error: not an Auralis checkout (no auralis-web/backend/main.py): {root}")
    if not a.auralis_python or not Path(a.auralis_python).exists():
        raise SystemExit("error: --auralis-python must name the Python of that checkout's environment")
    paths = ([Path(a.auralis_dsp_standin).resolve()] if a.auralis_dsp_standin else []) + [ROOT]
    return {"name": "auralis", "python": a.auralis_python, "app": "main:app", "app_dir": backend, "code_root": root,
            "cwd": backend, "pythonpath": paths}


def start(cfg: str, work: Path, spec: dict[str, Any]) -> tuple[OwnedProcess, str, int]:
    """(process, base URL, the track's id in the target's library)."""
    run_dir = work / f"run-{cfg}-{time.time_ns()}"
    home = run_dir / "home"
    (home / "Music").mkdir(parents=True)
    shutil.copy(work / "track.wav", home / "Music" / "track.wav")
    port = free_port()
    env = dict(os.environ, HOME=str(home), TMPDIR=str(run_dir), EARSHOT_REF_INJECT="",
               PYTHONPATH=os.pathsep.join(str(p) for p in spec["pythonpath"]))
    if CONFIGS[cfg] is None:
        argv = [spec["python"], "-m", "uvicorn", spec["app"], "--app-dir", str(spec["app_dir"]), "--host",
                "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--ws-per-message-deflate", "false",
                "--log-level", "info"]  # as the agent runs uvicorn: access logs cost the same on both sides
    else:
        argv = [spec["python"], "-m", "instrument.agent", "--app", spec["app"], "--app-dir", str(spec["app_dir"]),
                "--code-root", str(spec["code_root"]), "--host", "127.0.0.1", "--port", str(port), "--run-dir",
                str(run_dir), "--loop", "uvloop", "--ws-deflate", "off", *CONFIGS[cfg]]
    proc = OwnedProcess(cfg, argv, cwd=spec["cwd"], env=env, log=work / f"{cfg}.log")
    base = f"http://127.0.0.1:{port}"
    wait_for_health(f"{base}/api/health", proc, 120)
    requests.post(f"{base}/api/library/scan", json={"directories": [str(home / "Music")]}, timeout=120).raise_for_status()
    listed = requests.get(f"{base}/api/library/tracks", params={"limit": 10}, timeout=30).json().get("tracks") or []
    if not listed:
        raise RuntimeError(f"{cfg}: the scan found no track (see {work / f'{cfg}.log'})")
    return proc, base, int(listed[0]["id"])


def measure(base: str, work: Path, clients: int, streams_per_client: int, pid: int, track_id: int,
            enhanced: bool) -> dict[str, float]:
    tracks = {track_id: {"name": "track", "file": "track.wav"}}
    total = [0]
    lock = threading.Lock()
    stop = threading.Event()
    latencies: list[float] = []
    ttfa: list[float] = []

    def client(i: int) -> None:
        s = AuralisSession(base, work / "capture", user=f"b{i}", scenario="bench", tracks=tracks,
                           profile=ClientProfile("browser", flow_control=False), compression=False).connect()
        for _ in range(streams_per_client):
            t0 = time.time()
            s.play(track_id, enhanced=enhanced)
            s.pump(s.stream_done, deadline=time.time() + 600)
            rec = s.streams[-1].recorder if s.streams else None
            with lock:
                if rec is not None:
                    total[0] += rec.data_bytes
                    if getattr(rec, "first_audio_t", None):
                        ttfa.append((rec.first_audio_t - t0) * 1000)
        s.close()

    def rest() -> None:
        sess = requests.Session()
        while not stop.is_set():
            t = time.perf_counter()
            sess.get(f"{base}/api/library/tracks?limit=25", timeout=10)
            latencies.append((time.perf_counter() - t) * 1000)
            stop.wait(0.05)

    import psutil

    server = psutil.Process(pid)
    cpu0 = sum(server.cpu_times()[:2])
    rt = threading.Thread(target=rest, daemon=True)
    rt.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    cpu = sum(server.cpu_times()[:2]) - cpu0
    stop.set()
    rt.join(5)
    shutil.rmtree(work / "capture", ignore_errors=True)
    # server CPU per GB sent: the cost of instrumentation even when the client,
    # not the server, limits throughput (both share this machine's two cores)
    if not total[0]:
        raise RuntimeError("no audio was received")
    return {"cpu_s_per_gb": cpu / (total[0] / 1e9), "mb_s": total[0] / 1e6 / wall,
            "ttfa_ms": float(np.median(ttfa)) if ttfa else float("nan"),
            "rest_p50": float(np.percentile(latencies, 50)), "rest_p95": float(np.percentile(latencies, 95))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--streams-per-client", type=int, default=3)
    ap.add_argument("--track-seconds", type=float, default=60.0)
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    ap.add_argument("--enhanced", action="store_true", help="stream the enhanced path instead of the normal one")
    ap.add_argument("--auralis-root", default=os.environ.get("AURALIS_ROOT"), help="an Auralis checkout (default: the reference)")
    ap.add_argument("--auralis-python", default=os.environ.get("AURALIS_PYTHON"), help="the Python of its environment")
    ap.add_argument("--auralis-dsp-standin", nargs="?", const=str(ROOT.parent / "shared" / "lab"), default=None,
                    metavar="DIR", help="put the auralis_dsp stand-in on the target's path (default ../shared/lab)")
    a = ap.parse_args()
    configs = [c for c in a.configs.split(",") if c]
    if "bare" not in configs or any(c not in CONFIGS for c in configs):
        raise SystemExit(f"error: --configs must include bare and name only: {', '.join(CONFIGS)}")
    spec = target_spec(a)
    work = Path(tempfile.mkdtemp(prefix="earshot-overhead-"))
    rng = np.random.default_rng(0)
    sf.write(str(work / "track.wav"), (rng.standard_normal((int(a.track_seconds * 44100), 2)) * 0.05).astype("float32"),
             44100, subtype="FLOAT")
    results: dict[str, list[dict[str, float]]] = {k: [] for k in configs}
    try:
        for rep in range(a.repeats):
            order = configs if rep % 2 == 0 else list(reversed(configs))  # ABBA against drift
            for cfg in order:
                proc, base, track_id = start(cfg, work, spec)
                try:
                    results[cfg].append(measure(base, work, a.clients, a.streams_per_client, proc.pid, track_id,
                                                a.enhanced))
                finally:
                    proc.stop(grace_s=15)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    keys = ("cpu_s_per_gb", "mb_s", "ttfa_ms", "rest_p50", "rest_p95")
    med = {k: {m: statistics.median(r[m] for r in v) for m in keys} for k, v in results.items()}
    b = med["bare"]
    path = "enhanced" if a.enhanced else "normal"
    print(f"overhead on {spec['name']}: {a.clients} clients x {a.streams_per_client} {path} streams of "
          f"{a.track_seconds:.0f} s, REST polled every 50 ms meanwhile; median of {a.repeats} interleaved repeats")
    print(f"{'configuration':<14} {'server CPU s/GB':>15} {'x bare':>7} {'MB/s':>8} {'x bare':>7} {'TTFA ms':>9} "
          f"{'x bare':>7} {'REST p50 ms':>12} {'x bare':>7} {'REST p95 ms':>12} {'x bare':>7}")
    for k, m in med.items():
        print(f"{k:<14} {m['cpu_s_per_gb']:15.2f} {m['cpu_s_per_gb'] / b['cpu_s_per_gb']:7.3f} "
              f"{m['mb_s']:8.1f} {m['mb_s'] / b['mb_s']:7.3f} {m['ttfa_ms']:9.0f} {m['ttfa_ms'] / b['ttfa_ms']:7.3f} "
              f"{m['rest_p50']:12.2f} {m['rest_p50'] / b['rest_p50']:7.3f} {m['rest_p95']:12.2f} "
              f"{m['rest_p95'] / b['rest_p95']:7.3f}")
    if "default" in med:
        cost = 1 - med["default"]["mb_s"] / b["mb_s"]
        cpu_cost = med["default"]["cpu_s_per_gb"] / b["cpu_s_per_gb"] - 1
        print(f"default instrumentation: throughput {cost:+.1%} lower, server CPU per GB {cpu_cost:+.1%} "
              f"(goal: at most 3% throughput)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
