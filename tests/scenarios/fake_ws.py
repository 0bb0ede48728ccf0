"""A scripted stand-in for WSClient, for feeding exact message sequences to
the protocol client. (Transport itself is tested over real sockets.)"""
from __future__ import annotations

import json
import time

from scenarios.ws_transport import Binary, Text, WSClosed


class ScriptedWS:
    def __init__(self, messages, close_code=1000):
        self.script = list(messages)
        self.sent: list[dict] = []
        self.extensions: list[str] = []
        self.close_code = close_code

    def recv(self, timeout=None):
        if not self.script:
            raise WSClosed(self.close_code, "script ended")
        m = self.script.pop(0)
        now = time.time()
        if isinstance(m, (bytes, bytearray)):
            return Binary(bytes(m), now)
        if isinstance(m, str):
            return Text(m, now)
        return Text(json.dumps(m), now)

    def send_text(self, text):
        self.sent.append(json.loads(text))

    def close(self, abrupt=False):
        pass


def start(epoch=1, track_id=1, stream_type="normal", **extra):
    d = {"track_id": track_id, "sample_rate": 44100, "channels": 2, "total_chunks": 2, "chunk_duration": 15,
         "total_duration": 30.0, "stream_type": stream_type, "stream_epoch": epoch}
    d.update(extra)
    return {"type": "audio_stream_start", "data": d}


def meta(seq, epoch=1, chunk=0, frame=0, samples=8, track_id=1):
    return {"type": "audio_chunk_meta", "data": {"seq": seq, "track_id": track_id, "stream_epoch": epoch,
            "chunk_index": chunk, "chunk_count": 2, "frame_index": frame, "frame_count": 1, "sample_count": samples}}


def end(total, reason="completed", track_id=1):
    return {"type": "audio_stream_end", "data": {"track_id": track_id, "total_samples": total, "duration": 0.0,
                                                 "reason": reason}}
