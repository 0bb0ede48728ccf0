"""Dense, music-like and periodic test content for the audio detectors'
held-out cases and false-alarm corpus (benchmarks/audio_detection.py).

``signals.short_track`` is a sparse triad-per-beat pattern; real masters are
denser, and that is where detectors tuned on tones and noise fail:

* ``dense_music``: chords of many-harmonic notes with vibrato and slight
  inharmonicity, overlapping (legato pads, a bass line, a melody), kick /
  snare / hat transients, a stereo reverb tail (exponentially decaying noise
  impulse response), section dynamics (crescendos, quieter verses) and a
  noise floor. Every second is different, nothing repeats exactly.
* ``harmonic_tone``: one steady note with many harmonics and no vibrato:
  exactly periodic, so a repeat or drop of a few periods looks like a lag of
  a few samples to a correlation.

Deterministic from the seed; float32 (frames, 2), peak at ``peak_dbfs``.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from .signals import PEAK_DBFS, SR, _edge_fade, _frames, _normalise


def _note(t: np.ndarray, f0: float, rng: np.random.Generator, *, harmonics: int, sr: int,
          vibrato: bool = True) -> np.ndarray:
    """One harmonic note (mono): partials 1/h^a with random phases and a
    vibrato of 4.5-6.5 Hz and +-0.2-0.8% when ``vibrato``. Partial h is
    Im(z^h e^(i theta_h)) with z = e^(i phase): one complex product per
    partial instead of a sine."""
    if vibrato:
        fv, depth = rng.uniform(4.5, 6.5), rng.uniform(0.002, 0.008)
        phase = 2 * np.pi * f0 * (t - depth / (2 * np.pi * fv) * np.cos(2 * np.pi * fv * t + rng.uniform(0, 6.3)))
    else:
        phase = 2 * np.pi * f0 * t
    a = rng.uniform(0.8, 1.6)
    z = np.exp(1j * phase).astype(np.complex64)
    zh = z.copy()
    acc = np.zeros(len(t), dtype=np.complex64)
    for h in range(1, harmonics + 1):
        if f0 * h * (1.01 if vibrato else 1.0) > 0.45 * sr:
            break
        if h > 1:
            zh *= z
        acc += np.complex64(h ** -a * np.exp(1j * rng.uniform(0, 2 * np.pi))) * zh
    return acc.imag.astype(np.float64)


def _adsr(n: int, sr: int, attack_s: float, release_s: float, decay: float) -> np.ndarray:
    t = np.arange(n) / sr
    env = np.minimum(t / attack_s, 1.0) * np.exp(-t * decay)
    r = min(n, int(release_s * sr))
    env[n - r:] *= np.linspace(1.0, 0.0, r)
    return env


def dense_music(duration_s: float = 60.0, sr: int = SR, seed: int = 1, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """Dense music-like content (see module docstring)."""
    n = _frames(duration_s, sr)
    rng = np.random.default_rng(seed)
    dry = np.zeros((n, 2))
    beat = 60.0 / rng.uniform(84, 136)
    scale = np.array([0, 2, 3, 5, 7, 8, 10, 12])
    key = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    bar = 4 * beat
    n_bars = int(np.ceil(duration_s / bar)) + 1
    pad_h, mel_h = int(rng.integers(10, 17)), int(rng.integers(8, 13))
    for k in range(n_bars):  # a chord per bar, held across it (legato) with a release into the next
        start = int(k * bar * sr)
        if start >= n:
            break
        root = key * 2 ** (scale[int(rng.integers(0, 6))] / 12)
        m = min(int((bar + 0.6) * sr), n - start)
        t = np.arange(m) / sr
        env = _adsr(m, sr, rng.uniform(0.03, 0.2), 0.6, rng.uniform(0.1, 0.6))
        for ratio in (1.0, 2 ** (3 / 12), 2 ** (7 / 12), 2.0):
            pan = rng.uniform(0.25, 0.75)
            v = 0.25 * _note(t, root * ratio, rng, harmonics=pad_h, sr=sr) * env
            dry[start:start + m, 0] += v * pan
            dry[start:start + m, 1] += v * (1 - pan)
        for j in range(4):  # bass on every beat
            b0 = start + int(j * beat * sr)
            mb = min(int(beat * sr), n - b0)
            if mb <= 0:
                break
            tb = np.arange(mb) / sr
            v = 0.5 * _note(tb, root / 2, rng, harmonics=6, sr=sr, vibrato=False) * _adsr(mb, sr, 0.005, 0.05, 3.0)
            dry[b0:b0 + mb] += v[:, None]
        pos = 0.0
        while pos < bar:  # a melody of 8ths and quarters
            dur = beat * rng.choice([0.5, 1.0, 1.5])
            b0 = start + int(pos * sr)
            mm = min(int(dur * sr), n - b0)
            if mm <= 0:
                break
            if rng.uniform() < 0.8:
                f = key * 2 * 2 ** (scale[int(rng.integers(0, 8))] / 12)
                tm = np.arange(mm) / sr
                v = 0.3 * _note(tm, f, rng, harmonics=mel_h, sr=sr) * _adsr(mm, sr, 0.01, 0.05, 1.5)
                pan = rng.uniform(0.3, 0.7)
                dry[b0:b0 + mm, 0] += v * pan
                dry[b0:b0 + mm, 1] += v * (1 - pan)
            pos += dur
    # percussion: kick on 1 and 3, snare on 2 and 4, hats on 8ths, with a little timing jitter
    hp = butter(2, 6000.0, "highpass", fs=sr, output="sos")
    bp = butter(2, [180.0, 3500.0], "bandpass", fs=sr, output="sos")
    for i in range(int(duration_s / (beat / 2)) + 1):
        at = int((i * beat / 2 + rng.normal(0, 0.003)) * sr)
        if at < 0 or at >= n:
            continue
        if i % 4 == 0:
            m = min(int(0.25 * sr), n - at)
            t = np.arange(m) / sr
            f = 50 + 90 * np.exp(-t * 30)
            v = 0.9 * np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 14)
            dry[at:at + m] += v[:, None]
        if i % 4 == 2:
            m = min(int(0.18 * sr), n - at)
            v = sosfilt(bp, rng.standard_normal((m, 2)), axis=0) * np.exp(-np.arange(m) / (0.04 * sr))[:, None]
            dry[at:at + m] += 0.6 * v
        m = min(int(0.05 * sr), n - at)
        v = sosfilt(hp, rng.standard_normal((m, 2)), axis=0) * np.exp(-np.arange(m) / (0.008 * sr))[:, None]
        dry[at:at + m] += rng.uniform(0.1, 0.3) * v
    # reverb: a decorrelated exponentially decaying noise tail (RT60 ~1-2 s)
    rt = rng.uniform(1.0, 2.0)
    L = int(rt * sr)
    decay = np.exp(-6.9 * np.arange(L) / L)
    ir = rng.standard_normal((L, 2)) * decay[:, None]
    ir /= np.sqrt(np.sum(ir ** 2, axis=0))
    wet = np.stack([fftconvolve(dry[:, c], ir[:, c])[:n] for c in range(2)], axis=1)
    out = dry + rng.uniform(0.3, 0.6) * wet
    # dynamics: sections of 4-8 bars a few dB apart, joined by 2-bar crescendos
    t = np.arange(n) / sr
    sec = np.cumsum(rng.uniform(4, 8, 64) * bar)
    level = rng.uniform(-6, 0, 65)
    gain_db = np.interp(t, np.repeat(sec, 2) + np.tile([0.0, 2 * bar], len(sec)),
                        np.column_stack([level[:-1], level[1:]]).ravel())
    out *= 10 ** (gain_db / 20)[:, None]
    out += 10 ** (-62 / 20) * np.max(np.abs(out)) * rng.standard_normal((n, 2))  # the noise floor
    out *= _edge_fade(n, sr, 0.01)[:, None]
    return np.asarray(_normalise(out, peak_dbfs), dtype=np.float32)


def harmonic_tone(duration_s: float = 60.0, sr: int = SR, f0_hz: float = 147.0, harmonics: int = 24,
                  peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """A steady note of ``harmonics`` partials (1/h) at f0_hz, exactly periodic."""
    n = _frames(duration_s, sr)
    t = np.arange(n) / sr
    rng = np.random.default_rng(3)
    x = np.zeros(n)
    for h in range(1, harmonics + 1):
        if f0_hz * h < 0.45 * sr:
            x += np.sin(2 * np.pi * f0_hz * h * t + rng.uniform(0, 2 * np.pi)) / h
    left = x * _edge_fade(n, sr, 0.01)
    right = np.roll(left, 7)  # a little inter-channel delay: stereo, still periodic
    return np.asarray(_normalise(np.stack([left, right], axis=1), peak_dbfs), dtype=np.float32)
