"""What our in-process instrumentation costs the target.

The target is started bare (plain uvicorn), under the agent with the
default instrumentation, with --trace-memory, and with each profiler; each
configuration streams the same track to concurrent clients while REST
requests are timed, and the configurations are interleaved repeat by repeat
so machine drift hits all of them alike. Printed, per path (normal,
enhanced): server CPU per GB, throughput, time to first audio and REST
p50/p95 per configuration, and each as a ratio to bare with a 95% confidence
interval. The ratio of one repeat is taken against the bare run next to it
(paired), and the interval is Student's t over the repeats' log ratios.

`--check` makes it a guard: exit 1 when the default configuration costs more
than its budget, that is, when the whole confidence interval of a ratio lies
beyond it (so noise alone does not fail it, and a real cost does).

    python benchmarks/overhead.py [--repeats 4] [--clients 3] [--streams-per-client 2] [--paths normal,enhanced]
    python benchmarks/overhead.py --configs bare,default --check
    # a user's Auralis checkout, both paths, the enhanced one with the DSP stand-in:
    python benchmarks/overhead.py --auralis-root PATH --auralis-python PATH --auralis-dsp-standin \
        --configs bare,default --repeats 4 --paths normal,enhanced --track-seconds 60
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
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
from scipy import stats

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
    # the alternative measured against in-process sampling: the watchdog without
    # sampling, and py-spy reading the stacks from outside without pausing the target
    "pyspy-50hz": ["--busy-sample-hz", "0"],
    # runtime coverage (coverage.py from earshot's tool cache; sys.monitoring core on 3.12+)
    "coverage": ["--coverage"],
}
EXTERNAL = {"pyspy-50hz": ["py-spy", "record", "--nonblocking", "--rate", "50", "--format", "raw"]}
DEFAULT_CONFIGS = ("bare", "default", "trace-memory", "pyinstrument", "yappi")
KEYS = ("cpu_s_per_gb", "mb_s", "ttfa_ms", "rest_p50", "rest_p95")
LABELS = {"cpu_s_per_gb": "server CPU s/GB", "mb_s": "throughput MB/s", "ttfa_ms": "TTFA ms",
          "rest_p50": "REST p50 ms", "rest_p95": "REST p95 ms"}
# what the default instrumentation may cost, as a cost ratio to bare (>1 is
# worse; throughput is inverted so that holds for it too): the goal
BUDGET = {"cpu_s_per_gb": 1.01, "mb_s": 1.01, "ttfa_ms": 1.05, "rest_p50": 1.05, "rest_p95": 1.05}


def cost_ratios(results: dict[str, list[dict[str, float]]], cfg: str, key: str) -> list[float]:
    """Per repeat, cfg's cost relative to the bare run of the same repeat."""
    out = []
    for r, b in zip(results[cfg], results["bare"]):
        if not (r[key] > 0 and b[key] > 0):
            continue
        out.append(b[key] / r[key] if key == "mb_s" else r[key] / b[key])
    return out


def beyond_budget(results: dict[str, list[dict[str, float]]], cfg: str = "default") -> list[str]:
    """The figures whose whole confidence interval of cost lies beyond the budget."""
    out = []
    for k in KEYS:
        g, lo, hi = ratio_ci(cost_ratios(results, cfg, k))
        if lo > BUDGET[k]:
            out.append(f"{LABELS[k]}: {g:.3f} [{lo:.3f}, {hi:.3f}] > {BUDGET[k]}")
    return out


def ratio_ci(ratios: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Geometric mean and its confidence interval (t over log ratios)."""
    logs = np.log(np.asarray(ratios, dtype=float))
    m = float(np.mean(logs)) if len(logs) else float("nan")
    if len(logs) < 2:
        return float(np.exp(m)), float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(logs) - 1) * np.std(logs, ddof=1) / np.sqrt(len(logs)))
    return float(np.exp(m)), float(np.exp(m - half)), float(np.exp(m + half))


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
    paths = list(spec["pythonpath"])
    if CONFIGS[cfg] and "--coverage" in CONFIGS[cfg]:
        from instrument.target_site import ensure

        site = ensure(spec["python"], ["coverage"])
        paths += [site] if site else []
    env = dict(os.environ, HOME=str(home), TMPDIR=str(run_dir), EARSHOT_REF_INJECT="",
               PYTHONPATH=os.pathsep.join(str(p) for p in paths))
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
    if cfg in EXTERNAL:  # stopped by stop_all() with the rest (it ends when the target does anyway)
        OwnedProcess(f"{cfg}-sampler", [*EXTERNAL[cfg], "--pid", str(proc.pid), "--output", str(run_dir / "pyspy.txt")],
                     cwd=work, env=dict(os.environ), log=work / f"{cfg}-sampler.log")
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
            try:
                sess.get(f"{base}/api/library/tracks?limit=25", timeout=10)
            except requests.RequestException:
                # no answer within 10 s (Auralis's bare enhanced path blocks its loop that
                # long): counted at the time waited, a lower bound, and the poll goes on
                pass
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
    ap.add_argument("--enhanced", action="store_true", help="the enhanced path only (same as --paths enhanced)")
    ap.add_argument("--paths", default=None, help="comma-separated: normal, enhanced (default: normal)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when the default configuration's cost is beyond its budget (whole CI beyond it)")
    ap.add_argument("--auralis-root", default=os.environ.get("AURALIS_ROOT"), help="an Auralis checkout (default: the reference)")
    ap.add_argument("--auralis-python", default=os.environ.get("AURALIS_PYTHON"), help="the Python of its environment")
    ap.add_argument("--auralis-dsp-standin", nargs="?", const=str(ROOT.parent / "shared" / "lab"), default=None,
                    metavar="DIR", help="put the auralis_dsp stand-in on the target's path (default ../shared/lab)")
    a = ap.parse_args()
    configs = [c for c in a.configs.split(",") if c]
    paths = [p for p in (a.paths or ("enhanced" if a.enhanced else "normal")).split(",") if p]
    if not paths or any(p not in ("normal", "enhanced") for p in paths):
        raise SystemExit("error: --paths takes normal and/or enhanced")
    if a.repeats < 2:
        raise SystemExit("error: --repeats must be at least 2 (a confidence interval needs them)")
    if "bare" not in configs or any(c not in CONFIGS for c in configs):
        raise SystemExit(f"error: --configs must include bare and name only: {', '.join(CONFIGS)}")
    if a.check and "default" not in configs:
        raise SystemExit("error: --check needs the default configuration in --configs")
    if any(c in EXTERNAL for c in configs) and not shutil.which("py-spy"):
        raise SystemExit("error: the py-spy configurations need py-spy on PATH (pip install py-spy)")
    # a SIGTERM (timeout, CI) unwinds through stop_all like Ctrl-C: no server outlives us
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    spec = target_spec(a)
    work = Path(tempfile.mkdtemp(prefix="earshot-overhead-"))
    rng = np.random.default_rng(0)
    sf.write(str(work / "track.wav"), (rng.standard_normal((int(a.track_seconds * 44100), 2)) * 0.05).astype("float32"),
             44100, subtype="FLOAT")
    results: dict[str, dict[str, list[dict[str, float]]]] = {p: {k: [] for k in configs} for p in paths}
    try:
        for rep in range(a.repeats):
            order = configs if rep % 2 == 0 else list(reversed(configs))  # ABBA against drift
            for cfg in order:
                proc, base, track_id = start(cfg, work, spec)
                try:  # both paths on one server start: the pair is measured under the same conditions
                    for path in (paths if rep % 2 == 0 else list(reversed(paths))):
                        results[path][cfg].append(measure(base, work, a.clients, a.streams_per_client, proc.pid,
                                                          track_id, path == "enhanced"))
                        print(f"  repeat {rep + 1} {cfg} {path}: " + ", ".join(
                            f"{k} {v:.2f}" for k, v in results[path][cfg][-1].items()), file=sys.stderr, flush=True)
                finally:
                    proc.stop(grace_s=15)
    except BaseException:
        stop_all()
        print(f"failed: the servers' logs are kept in {work}", file=sys.stderr)
        raise
    finally:
        stop_all()
    shutil.rmtree(work, ignore_errors=True)
    over_budget = []
    for path in paths:
        res = results[path]
        print(f"\noverhead on {spec['name']}, {path} path: {a.clients} clients x {a.streams_per_client} streams of "
              f"{a.track_seconds:.0f} s, REST polled every 50 ms meanwhile; {a.repeats} interleaved repeats. "
              "Cost ratio to bare (throughput inverted: >1 is worse), geometric mean [95% CI]:")
        print(f"{'configuration':<16}" + "".join(f" {LABELS[k]:>24}" for k in KEYS))
        for cfg in configs:
            med = {k: statistics.median(r[k] for r in res[cfg]) for k in KEYS}
            print(f"{cfg:<16}" + "".join(f" {med[k]:>24.2f}" for k in KEYS))
            if cfg == "bare":
                continue
            cells = []
            for k in KEYS:
                g, lo, hi = ratio_ci(cost_ratios(res, cfg, k))
                cells.append(f"{g:.3f} [{lo:.3f}, {hi:.3f}]")
            if cfg == "default":
                over_budget += [f"{path} {x}" for x in beyond_budget(res)]
            print(f"{'  x bare':<16}" + "".join(f" {c:>24}" for c in cells))
    if a.check:
        if over_budget:
            print("CHECK FAILED: the default instrumentation costs more than its budget: " + "; ".join(over_budget))
            return 1
        print("check passed: no cost ratio of the default configuration is beyond its budget "
              + ", ".join(f"{LABELS[k]} {v}" for k, v in BUDGET.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
