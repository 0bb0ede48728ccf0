"""Known answers for the reference backend's parts without a server:
injection names, geometry and seek mapping, and each boundary injection's
exact effect on the rendered chunks (the clean render as control)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from instrument.reference.geometry import plan, start_point
from instrument.reference.injections import INJECTIONS, parse_injections
from instrument.reference.streaming import render_chunk

from .helpers import ROOT

SR = 44100
N = 40 * SR
BOUNDARY = ["boundary-click", "level-step", "linear-crossfade-dip", "drop-samples", "repeat-overlap", "gap"]


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return (0.1 * np.random.default_rng(3).standard_normal((N, 2))).astype(np.float32)


@pytest.fixture(scope="module")
def sine() -> np.ndarray:
    t = np.arange(N) / SR
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)], 1).astype(np.float32)


def stream(x: np.ndarray, enhanced: bool, inj: frozenset[str] = frozenset()) -> tuple[np.ndarray, list[int]]:
    ch = plan(len(x), SR, enhanced)
    parts = [render_chunk(x, SR, ch, k, enhanced, inj) for k in range(len(ch))]
    return np.concatenate(parts), list(np.cumsum([len(p) for p in parts])[:-1])


def test_injection_names_and_parse():
    assert set(INJECTIONS) == {*BOUNDARY, "blocking-send", "unbounded-buffer", "leak-on-disconnect", "slow-start",
                               "loop-saturation", "chunk-timeout",
                               "contract-drift", "shared-state", "crash-on-bad-message",  # ws checks (issue 9)
                               "schema-violation", "cors-wildcard-credentials", "bad-file-hang",
                               "bad-file-traceback",  # http checks (issue 9)
                               "seek-offset", "resume-replay", "stale-after-seek", "attenuate-after-silence",
                               "short-track-trim",  # position truth (issue 14)
                               "restart-loses-settings", "unsafe-concurrent-write", "path-traversal",
                               "shutdown-leaks-children", "slot-leak-on-cancel",  # lifecycle checks (issue 19)
                               "pre-echo", "fade-in-dip"}  # Auralis's boundary signatures (issue 18)
    assert all("->" in d for d in INJECTIONS.values()), "each description says what a tool must report"
    assert "1048576 bytes" in INJECTIONS["leak-on-disconnect"]
    assert parse_injections("") == frozenset()
    assert parse_injections(" gap, drop-samples ,") == {"gap", "drop-samples"}
    with pytest.raises(ValueError, match=r"unknown injection 'nope' \(known: boundary-click, "):
        parse_injections("gap,nope")


@pytest.mark.parametrize("argv", [["--host", "0.0.0.0"], ["--host", "192.168.1.2"], ["--inject", "nope"]])
def test_cli_refuses_bad_input_with_one_line(argv):
    r = subprocess.run([sys.executable, "-m", "instrument.reference", "--port", "1", *argv], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")


def test_geometry_matches_auralis():
    starts = [c.start / SR for c in plan(N, SR, True)]
    assert starts == [0, 15, 25, 35] and plan(N, SR, True)[-1].end == N
    assert [c.context_start / SR for c in plan(N, SR, True)] == [0, 10, 20, 30]
    assert [c.start / SR for c in plan(N, SR, False)] == [0, 15, 30]
    # Auralis's content_chunk_count: ceil((duration - 5) / 10)
    for secs in (14.0, 15.0, 20.0, 45.0, 45.5, 61.0):
        assert len(plan(int(secs * SR), SR, True)) == max(1, int(np.ceil((secs - 5) / 10))), secs


def test_seek_mapping_matches_auralis():
    enh, nor = plan(N, SR, True), plan(N, SR, False)
    sp = start_point(enh, SR, 17.3, True)
    assert (sp.chunk, sp.position_s, sp.trim) == (1, 17.3, round(2.3 * SR)) and sp.offset_s == pytest.approx(2.3)
    sp = start_point(enh, SR, 24.7, True)  # within 0.5 s of chunk 1's end: advance to chunk 2's start
    assert (sp.chunk, sp.offset_s, sp.position_s, sp.trim) == (2, 0.0, 25.0, 0)
    sp = start_point(enh, SR, 12.0, True)
    assert (sp.chunk, sp.trim) == (0, 12 * SR)
    sp = start_point(nor, SR, 17.3, False)
    assert (sp.chunk, sp.position_s, sp.trim) == (1, 17.3, int(17.3 * SR) - 15 * SR)
    assert start_point(nor, SR, 99.0, False).chunk == 2  # clamped to the last chunk


@pytest.mark.parametrize("enhanced", [False, True])
def test_clean_render_is_continuous(sine, noise, enhanced):
    y, b = stream(sine, enhanced)
    assert len(y) == N
    if not enhanced:
        assert np.array_equal(y, sine)
        return
    assert [x / SR for x in b] == [15, 25, 35]
    d2 = np.abs(np.diff(y[:, 0], 2))
    near = np.zeros(len(d2), bool)
    for i in b:
        near[i - 3:i + 2] = True
    assert d2[near].max() <= d2[~near].max()  # no boundary stands out on a sine
    # noise that is 12 dB quieter after 20 s: the chunks' own gains differ, and
    # the ramp from the predecessor's gain must hide that at every boundary
    env = np.where(np.arange(N) < 20 * SR, 1.0, 0.25)[:, None].astype(np.float32)
    z, bz = stream(noise * env, True)
    for i in bz:  # no level step above ~0.3 dB (50 ms either side)
        w = int(0.05 * SR)
        step = 10 * np.log10(np.mean(z[i:i + w] ** 2) / np.mean(z[i - w:i] ** 2))
        assert abs(step) < 0.3


@pytest.mark.parametrize("enhanced", [False, True])
def test_boundary_injections_have_their_documented_size(sine, noise, enhanced):
    clean, b = stream(noise, enhanced)
    w = int(0.05 * SR)

    y, yb = stream(noise, enhanced, frozenset({"drop-samples"}))
    assert len(y) == N - 64 * len(b)

    y, yb = stream(noise, enhanced, frozenset({"repeat-overlap"}))
    assert len(y) == N + 5 * SR * len(b)
    assert np.allclose(y[yb[0]:yb[0] + 5 * SR], clean[b[0] - 5 * SR:b[0]], atol=1e-6)  # the 5 s sent twice

    y, yb = stream(noise, enhanced, frozenset({"gap"}))
    assert all(not y[i:i + int(0.05 * SR)].any() and y[i + int(0.05 * SR)].any() for i in yb)

    y, yb = stream(noise, enhanced, frozenset({"boundary-click"}))
    assert np.allclose(y[yb] - clean[b], 0.5, atol=1e-6)
    assert np.array_equal(np.delete(y, yb, 0), np.delete(clean, b, 0))

    y, yb = stream(noise, enhanced, frozenset({"level-step"}))
    for i in yb:
        step = 10 * np.log10(np.mean(y[i:i + w] ** 2) / np.mean(y[i - w:i] ** 2))
        assert abs(abs(step) - 1.5) < 0.35, step

    y, yb = stream(noise, enhanced, frozenset({"linear-crossfade-dip"}))
    assert len(y) == N - int(0.5 * SR) * len(b)
    i = yb[0]
    mid = 10 * np.log10(np.mean(y[i + int(0.2 * SR):i + int(0.3 * SR)] ** 2) /
                        np.mean(y[i + int(0.6 * SR):i + int(0.9 * SR)] ** 2))
    assert -4.0 < mid < -2.0, mid  # uncorrelated halves at 0.5/0.5 sum to -3 dB


@pytest.mark.parametrize("enhanced", [False, True])
def test_pre_echo_and_fade_in_dip_are_auralis_boundary_fades(noise, enhanced):
    clean, b = stream(noise, enhanced)
    n = int(0.2 * SR)
    f = (np.sin(np.linspace(0.0, np.pi / 2, n)) ** 2)[:, None]
    y, yb = stream(noise, enhanced, frozenset({"pre-echo"}))
    assert len(y) == N and yb == b
    for i in b:  # the tail already sent, replayed fading out under the head fading in
        assert np.allclose(y[i:i + n], clean[i - n:i] * (1 - f) + clean[i:i + n] * f, atol=1e-6)
    assert np.array_equal(np.delete(y, [j for i in b for j in range(i, i + n)], 0),
                          np.delete(clean, [j for i in b for j in range(i, i + n)], 0))
    y, yb = stream(noise, enhanced, frozenset({"fade-in-dip"}))
    assert len(y) == N and yb == b
    for i in b:
        assert np.allclose(y[i:i + n], clean[i:i + n] * f, atol=1e-6) and not y[i].any()
    assert np.array_equal(np.delete(y, [j for i in b for j in range(i, i + n)], 0),
                          np.delete(clean, [j for i in b for j in range(i, i + n)], 0))
