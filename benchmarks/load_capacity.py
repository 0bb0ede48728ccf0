"""How much PCM one load-generator core can receive and record.

A loopback server (the `websockets` library, in its own process) answers
play_normal with Auralis-shaped streams: audio_stream_start, then
audio_chunk_meta + 300 KB binary frame pairs, then audio_stream_end. Our
protocol client (the one the scenarios use) receives and records them into a
scratch run directory. The figure is bytes received per CPU-second of the
client process (time.process_time), so a busy machine does not distort it, with
wall-clock MB/s beside it; compression on (permessage-deflate, as browsers)
and off, side by side.

    python benchmarks/load_capacity.py [--seconds-of-audio 300] [--repeats 3]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scenarios.protocol_client import AuralisSession, ClientProfile  # noqa: E402

SR = 44100
FLOATS_PER_FRAME = 76800  # Auralis splits frames at 300 KB


def _serve(port: int, compression: bool, ready) -> None:
    from websockets.asyncio.server import serve

    rng = np.random.default_rng(0)
    # music-like content (pink-ish noise at -20 dBFS) so deflate sees realistic entropy
    audio = (np.cumsum(rng.standard_normal(FLOATS_PER_FRAME * 8)) * 1e-3).astype("<f4")
    audio -= np.convolve(audio, np.ones(64) / 64, mode="same").astype("<f4")
    frames = [audio[i * FLOATS_PER_FRAME:(i + 1) * FLOATS_PER_FRAME].tobytes() for i in range(8)]

    async def handler(ws):
        epoch = 0
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("type") != "play_normal":
                continue
            seconds = float(msg["data"].get("seconds", 60))
            epoch += 1
            n = int(seconds * SR * 2 / FLOATS_PER_FRAME)
            await ws.send(json.dumps({"type": "audio_stream_start", "data": {
                "track_id": 1, "sample_rate": SR, "channels": 2, "total_chunks": 1, "chunk_duration": 15,
                "total_duration": seconds, "stream_type": "normal", "stream_epoch": epoch}}))
            for i in range(n):
                await ws.send(json.dumps({"type": "audio_chunk_meta", "data": {
                    "seq": i, "track_id": 1, "stream_epoch": epoch, "chunk_index": i // 18, "chunk_count": n // 18 + 1,
                    "frame_index": i % 18, "frame_count": 18, "sample_count": FLOATS_PER_FRAME}}))
                await ws.send(frames[i % 8])
            await ws.send(json.dumps({"type": "audio_stream_end", "data": {
                "track_id": 1, "total_samples": n * FLOATS_PER_FRAME // 2, "duration": seconds, "reason": "completed"}}))

    async def main():
        async with serve(handler, "127.0.0.1", port, compression="deflate" if compression else None,
                         max_size=None, write_limit=1 << 22):
            ready.set()
            await asyncio.Future()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(compression: bool, seconds: float, run_dir: Path) -> dict[str, float]:
    port = _free_port()
    ready = mp.Event()
    proc = mp.Process(target=_serve, args=(port, compression, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(20):
            raise RuntimeError("benchmark server did not start")
        s = AuralisSession(f"http://127.0.0.1:{port}", run_dir, user="bench", scenario="bench", tracks={},
                           profile=ClientProfile("browser", flow_control=False), compression=compression).connect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        s.play_request = {"type": "play_normal", "data": {"track_id": 1, "seconds": seconds}}
        s.play_sent_t = time.time()
        s.send("play_normal", {"track_id": 1, "seconds": seconds})
        s.pump(s.stream_done, deadline=time.time() + 300)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        rec = s.streams[-1].recorder
        nbytes = rec.data_bytes
        s.close()
        return {"mb": nbytes / 1e6, "cpu_s": cpu, "wall_s": wall, "mb_per_cpu_s": nbytes / 1e6 / cpu,
                "mb_per_wall_s": nbytes / 1e6 / wall}
    finally:
        proc.terminate()
        proc.join(5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds-of-audio", type=float, default=300.0)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    realtime_mb_s = SR * 2 * 4 / 1e6
    tmp = Path(tempfile.mkdtemp(prefix="earshot-bench-"))
    rows: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    try:
        for _ in range(a.repeats):  # interleaved so drift hits both settings
            for mode in ("off", "on"):
                rows[mode].append(measure(mode == "on", a.seconds_of_audio, tmp))
                shutil.rmtree(tmp / "streams", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load-generator capacity: {a.seconds_of_audio:.0f} s of stereo float32 per stream "
          f"({a.seconds_of_audio * realtime_mb_s:.0f} MB), {a.repeats} repeats, median shown")
    print(f"{'compression':<12} {'MB/s per core':>14} {'MB/s wall':>10} {'streams/core at 1x':>19}")
    med = {}
    for mode in ("off", "on"):
        per_core = float(np.median([r["mb_per_cpu_s"] for r in rows[mode]]))
        wall = float(np.median([r["mb_per_wall_s"] for r in rows[mode]]))
        med[mode] = per_core
        print(f"{mode:<12} {per_core:14.0f} {wall:10.0f} {per_core / realtime_mb_s:19.0f}")
    print(f"ratio on/off (per core): {med['on'] / med['off']:.2f}; goal >= 100 MB/s per core: "
          f"{'met' if min(med.values()) >= 100 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
