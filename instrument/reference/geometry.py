"""Chunk geometry, as Auralis's code has it since late 2025 (never 30 s/3 s):
normal path 15 s chunks, no overlap; enhanced path chunk 0 = [0, 15),
chunk k>=1 = [10k+5, 10k+15), each rendered with 5 s of context before it."""
from __future__ import annotations

import math
from dataclasses import dataclass

CHUNK_S = 15.0
ENH_INTERVAL_S = 10.0
CONTEXT_S = 5.0


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # sample frames into the track (what this chunk delivers)
    end: int
    context_start: int  # where rendering starts (start - context)


def plan(total: int, sr: int, enhanced: bool) -> list[Chunk]:
    c = int(CHUNK_S * sr)
    if not enhanced:
        n = max(1, math.ceil(total / c))
        return [Chunk(k, k * c, min(total, (k + 1) * c), k * c) for k in range(n)]
    out = [Chunk(0, 0, min(total, c), 0)]
    i = int(ENH_INTERVAL_S * sr)
    k = 1
    while i * k + int(CONTEXT_S * sr) < total:
        start = i * k + int(CONTEXT_S * sr)
        out.append(Chunk(k, start, min(total, i * k + c), start - int(CONTEXT_S * sr)))
        k += 1
    return out


def chunk_for(chunks: list[Chunk], position_frames: int) -> int:
    for ch in chunks:
        if ch.start <= position_frames < ch.end:
            return ch.index
    return chunks[-1].index
