"""What our in-process instrumentation costs the target.

The reference backend is started bare (plain uvicorn), under the agent with
the default instrumentation, with --trace-memory, and with each profiler;
each configuration streams the same track to concurrent clients while REST
requests are timed, and the configurations are interleaved repeat by repeat
so machine drift hits all of them alike. Printed: throughput and REST
latency per configuration and as ratios to bare.

    python benchmarks/overhead.py [--repeats 3] [--clients 3] [--streams-per-client 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

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
}


def start(cfg: str, work: Path) -> tuple[OwnedProcess, str]:
    run_dir = work / f"run-{cfg}-{time.time_ns()}"
    home = run_dir / "home"
    (home / "Music").mkdir(parents=True)
    shutil.copy(work / "track.wav", home / "Music" / "track.wav")
    port = free_port()
    env = dict(os.environ, HOME=str(home), TMPDIR=str(run_dir), PYTHONPATH=str(ROOT), EARSHOT_REF_INJECT="")
    if CONFIGS[cfg] is None:
        argv = [sys.executable, "-m", "uvicorn", "instrument.reference.app:app", "--host", "127.0.0.1", "--port",
                str(port), "--loop", "uvloop", "--ws-per-message-deflate", "false", "--log-level", "warning"]
    else:
        argv = [sys.executable, "-m", "instrument.agent", "--app", "instrument.reference.app:app", "--app-dir",
                str(ROOT), "--code-root", str(ROOT / "instrument" / "reference"), "--host", "127.0.0.1", "--port",
                str(port), "--run-dir", str(run_dir), "--loop", "uvloop", "--ws-deflate", "off", *CONFIGS[cfg]]
    proc = OwnedProcess(cfg, argv, cwd=ROOT, env=env, log=work / f"{cfg}.log")
    base = f"http://127.0.0.1:{port}"
    wait_for_health(f"{base}/api/health", proc, 60)
    requests.post(f"{base}/api/library/scan", json={"directories": [str(home / "Music")]}, timeout=60).raise_for_status()
    return proc, base


def measure(base: str, work: Path, clients: int, streams_per_client: int, pid: int) -> dict[str, float]:
    tracks = {1: {"name": "track", "file": "track.wav"}}
    total = [0]
    lock = threading.Lock()
    stop = threading.Event()
    latencies: list[float] = []

    def client(i: int) -> None:
        s = AuralisSession(base, work / "capture", user=f"b{i}", scenario="bench", tracks=tracks,
                           profile=ClientProfile("browser", flow_control=False), compression=False).connect()
        for _ in range(streams_per_client):
            s.play(1, enhanced=False)
            s.pump(s.stream_done, deadline=time.time() + 120)
            with lock:
                total[0] += s.streams[-1].recorder.data_bytes
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
    return {"cpu_s_per_gb": cpu / (total[0] / 1e9), "mb_s": total[0] / 1e6 / wall, "rest_p50": float(np.percentile(latencies, 50)),
            "rest_p95": float(np.percentile(latencies, 95))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--streams-per-client", type=int, default=3)
    ap.add_argument("--track-seconds", type=float, default=60.0)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="earshot-overhead-"))
    rng = np.random.default_rng(0)
    sf.write(str(work / "track.wav"), (rng.standard_normal((int(a.track_seconds * 44100), 2)) * 0.05).astype("float32"),
             44100, subtype="FLOAT")
    results: dict[str, list[dict[str, float]]] = {k: [] for k in CONFIGS}
    try:
        for rep in range(a.repeats):
            order = list(CONFIGS) if rep % 2 == 0 else list(reversed(CONFIGS))  # ABBA against drift
            for cfg in order:
                proc, base = start(cfg, work)
                try:
                    results[cfg].append(measure(base, work, a.clients, a.streams_per_client, proc.pid))
                finally:
                    proc.stop(grace_s=15)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("cpu_s_per_gb", "mb_s", "rest_p50", "rest_p95")}
           for k, v in results.items()}
    b = med["bare"]
    print(f"overhead on the reference backend: {a.clients} clients x {a.streams_per_client} normal streams of "
          f"{a.track_seconds:.0f} s, REST polled every 50 ms meanwhile; median of {a.repeats} interleaved repeats")
    print(f"{'configuration':<14} {'server CPU s/GB':>15} {'x bare':>7} {'MB/s':>8} {'x bare':>7} {'REST p50 ms':>12} "
          f"{'x bare':>7} {'REST p95 ms':>12} {'x bare':>7}")
    for k, m in med.items():
        print(f"{k:<14} {m['cpu_s_per_gb']:15.2f} {m['cpu_s_per_gb'] / b['cpu_s_per_gb']:7.3f} "
              f"{m['mb_s']:8.1f} {m['mb_s'] / b['mb_s']:7.3f} {m['rest_p50']:12.2f} "
              f"{m['rest_p50'] / b['rest_p50']:7.3f} {m['rest_p95']:12.2f} {m['rest_p95'] / b['rest_p95']:7.3f}")
    cost = 1 - med["default"]["mb_s"] / b["mb_s"]
    cpu_cost = med["default"]["cpu_s_per_gb"] / b["cpu_s_per_gb"] - 1
    print(f"default instrumentation: throughput {cost:+.1%} lower, server CPU per GB {cpu_cost:+.1%} "
          f"(goal: at most 3% throughput)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
