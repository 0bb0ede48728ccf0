"""Test signals with known truth.

Every generator is deterministic (fixed seeds, no global state) and returns
float32 ``(frames, 2)`` at 44.1 kHz by default, peaking at or below -12 dBFS,
so a capture can always be compared with a regenerated source.

Why these signals:

* ``sine``: a steady tone is perfectly predictable, so any click, dropped or
  repeated sample shows in a linear-prediction residual far below audibility.
* ``pink_noise_stereo``: uncorrelated L/R noise; a linear crossfade between two
  uncorrelated renderings dips ~3 dB at its centre, which a level trace shows.
* ``log_sweep``: one frequency at a time, so a per-chunk EQ change shows as a
  level step at the boundary whose size depends on where the sweep is.
* ``time_coded``: a distinct two-tone code in every 100 ms slot; a repeated,
  dropped or shifted span can be located even after mastering changes the
  waveform (``decode_time_code``, ``locate_time_code``).
* ``silence_then_music``: 25 s of digital silence then music-like content
  (a track that starts late exercises silence handling and the first chunks).
* ``short_track``: 18.5 s, shorter than two chunks of any geometry seen so far.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

SR = 44100
PEAK_DBFS = -12.0
_PEAK = 10 ** (PEAK_DBFS / 20)

# time code: slot k carries tone A(k % 40) + tone B((k // 40) % 40)
SLOT_S = 0.1
TC_DIGITS = 40
TC_PERIOD_SLOTS = TC_DIGITS * TC_DIGITS  # 1600 slots = 160 s before the code repeats
TC_FREQ_A = 400.0 + 40.0 * np.arange(TC_DIGITS)  # 400..1960 Hz
TC_FREQ_B = 2500.0 + 80.0 * np.arange(TC_DIGITS)  # 2500..5620 Hz
_TC_RAMP_S = 0.005


def _frames(duration_s: float, sr: int) -> int:
    if duration_s <= 0 or sr <= 0:
        raise ValueError("duration_s and sr must be positive")
    return int(round(duration_s * sr))


def _stereo(left: np.ndarray, right: np.ndarray | None = None) -> np.ndarray:
    right = left if right is None else right
    return np.ascontiguousarray(np.stack([left, right], axis=1), dtype=np.float32)


def _normalise(x: np.ndarray, peak_dbfs: float) -> np.ndarray:
    peak = float(np.max(np.abs(x))) or 1.0
    return x * (10 ** (peak_dbfs / 20) / peak)


def sine(duration_s: float = 60.0, sr: int = SR, freq_hz: float = 997.0, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """A pure tone, identical in both channels. 997 Hz (a prime) so no frame
    or block size used by the analysis holds a whole number of periods."""
    t = np.arange(_frames(duration_s, sr)) / sr
    return _stereo(10 ** (peak_dbfs / 20) * np.sin(2 * np.pi * freq_hz * t))


def pink_noise_stereo(duration_s: float = 60.0, sr: int = SR, seed: int = 1, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """Pink (1/f power) noise, independent in L and R, 20 Hz high-passed by
    construction, peak-normalised."""
    n = _frames(duration_s, sr)
    rng = np.random.default_rng(seed)
    f = np.fft.rfftfreq(n, 1 / sr)
    shape = np.where(f >= 20.0, 1.0 / np.sqrt(np.maximum(f, 20.0)), 0.0)
    chans = []
    for _ in range(2):
        spec = np.fft.rfft(rng.standard_normal(n)) * shape
        chans.append(np.fft.irfft(spec, n))
    x = np.stack(chans, axis=1)
    return np.asarray(_normalise(x, peak_dbfs), dtype=np.float32)


def log_sweep(duration_s: float = 60.0, sr: int = SR, f0_hz: float = 20.0, f1_hz: float = 20000.0,
              peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """Exponential sine sweep f0 -> f1 over the whole duration (Farina form),
    10 ms fade in/out so the ends are not clicks themselves."""
    n = _frames(duration_s, sr)
    t = np.arange(n) / sr
    k = np.log(f1_hz / f0_hz)
    phase = 2 * np.pi * f0_hz * duration_s / k * (np.exp(t * k / duration_s) - 1)
    x = np.sin(phase) * _edge_fade(n, sr, 0.01)
    return _stereo(10 ** (peak_dbfs / 20) * x)


def _edge_fade(n: int, sr: int, fade_s: float) -> np.ndarray:
    m = min(n // 2, int(fade_s * sr))
    w = np.ones(n)
    if m > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(m) / m)
        w[:m] = ramp
        w[n - m:] = ramp[::-1]
    return w


def time_code_digits(slot: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    slot = np.asarray(slot) % TC_PERIOD_SLOTS
    return slot % TC_DIGITS, slot // TC_DIGITS


def time_coded(duration_s: float = 90.0, sr: int = SR, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """Slot k (100 ms) holds two tones: TC_FREQ_A[k % 40] + TC_FREQ_B[k // 40 % 40],
    each with 5 ms raised-cosine ramps so slot edges are not clicks. The code
    repeats every 160 s. Both channels carry the same code."""
    n = _frames(duration_s, sr)
    slot_len = int(round(SLOT_S * sr))
    idx = np.arange(n)
    slot = idx // slot_len
    pos = idx - slot * slot_len
    a, b = time_code_digits(slot)
    t = idx / sr
    # phase restarts per slot: continuity comes from the ramps, not the phase
    tt = pos / sr
    x = np.sin(2 * np.pi * TC_FREQ_A[a] * tt) + np.sin(2 * np.pi * TC_FREQ_B[b] * tt)
    m = int(_TC_RAMP_S * sr)
    env = np.ones(slot_len)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(m) / m)
    env[:m] = ramp
    env[slot_len - m:] = ramp[::-1]
    x *= env[pos]
    del t
    return _stereo(10 ** (peak_dbfs / 20) / 2 * x)


def decode_time_code(x: np.ndarray, sr: int = SR, offset: int = 0, window_s: float = 0.08,
                     min_prominence_db: float = 12.0) -> np.ndarray:
    """Decode the source slot index of each 100 ms step of a capture.

    Parameters
    ----------
    x : (frames,) or (frames, channels) capture of ``time_coded`` audio
    sr : sample rate
    offset : first frame of the first step analysed
    window_s : analysis window centred in each step (Hann)
    min_prominence_db : how far each code tone must stand above the median of
        its band for the step to count as decoded

    Returns
    -------
    int array, one per step: the source slot index modulo 1600, or -1 where
    the step does not carry a clear code (silence, a seam, heavy processing).
    """
    mono = x.mean(axis=1) if x.ndim == 2 else x
    step = int(round(SLOT_S * sr))
    win = int(window_s * sr)
    n_steps = max(0, (len(mono) - offset - step) // step + 1)
    if n_steps == 0:
        return np.zeros(0, dtype=int)
    starts = offset + np.arange(n_steps) * step + (step - win) // 2
    frames = mono[starts[:, None] + np.arange(win)] * np.hanning(win)
    nfft = 1 << int(np.ceil(np.log2(win * 4)))
    spec = np.abs(np.fft.rfft(frames, nfft, axis=1))
    bins_a = np.round(TC_FREQ_A * nfft / sr).astype(int)
    bins_b = np.round(TC_FREQ_B * nfft / sr).astype(int)
    ea, eb = spec[:, bins_a], spec[:, bins_b]
    a, b = ea.argmax(axis=1), eb.argmax(axis=1)
    tiny = 1e-12

    def prominent(e: np.ndarray, k: np.ndarray) -> np.ndarray:
        peak = e[np.arange(len(k)), k]
        return 20 * np.log10((peak + tiny) / (np.median(e, axis=1) + tiny)) >= min_prominence_db

    ok = prominent(ea, a) & prominent(eb, b)
    return np.where(ok, b * TC_DIGITS + a, -1)


def locate_time_code(x: np.ndarray, sr: int = SR) -> int | None:
    """Coarse source offset (frames, +-~50 ms) of a time-coded capture: the
    capture's frame 0 is source frame ``offset``. None if the code is absent.
    Refine to the sample with ``analysis.audio.alignment``."""
    slots = decode_time_code(x, sr)
    good = np.flatnonzero(slots >= 0)
    if len(good) < max(3, len(slots) // 4):
        return None
    step = int(round(SLOT_S * sr))
    diffs = (slots[good] - good) % TC_PERIOD_SLOTS
    vals, counts = np.unique(diffs, return_counts=True)
    if counts.max() < len(good) // 3:
        return None
    return int(vals[counts.argmax()]) * step


def _music(duration_s: float, sr: int, seed: int) -> np.ndarray:
    """Music-like content: a chord progression of harmonic notes with
    attack/decay envelopes, a bass line and short noise 'hats'. Not music, but
    it has what the detectors must cope with: changing level and spectrum."""
    n = _frames(duration_s, sr)
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 2))
    beat = 0.4771  # ~126 bpm: onsets do not fall on round seconds (or chunk boundaries)
    roots = [220.0, 174.61, 261.63, 196.0]  # A F C G
    t_beat = np.arange(int(beat * sr * 2)) / sr
    env_note = np.minimum(t_beat / 0.01, 1.0) * np.exp(-t_beat * 2.5)
    n_beats = int(duration_s / beat)
    for i in range(n_beats):
        start = int(i * beat * sr)
        root = roots[(i // 8) % len(roots)]
        seg = min(len(t_beat), n - start)
        if seg <= 0:
            break
        note = np.zeros(seg)
        for ratio in (1.0, 1.26, 1.5):  # triad
            f = root * ratio * (1 + 0.002 * rng.standard_normal())
            for h in range(1, 5):
                note += (0.5 ** h) * np.sin(2 * np.pi * f * h * t_beat[:seg] + rng.uniform(0, 2 * np.pi))
        bass = np.sin(2 * np.pi * root / 2 * t_beat[:seg]) * 1.5
        pan = 0.5 + 0.3 * np.sin(i)
        out[start:start + seg, 0] += (note * pan + bass) * env_note[:seg]
        out[start:start + seg, 1] += (note * (1 - pan) + bass) * env_note[:seg]
        hat_len = min(int(0.03 * sr), n - start)
        hat = rng.standard_normal((hat_len, 2)) * np.exp(-np.arange(hat_len) / (0.006 * sr))[:, None] * 0.6
        hat = np.diff(hat, axis=0, prepend=0.0)  # brighter
        out[start:start + hat_len] += hat
    out *= _edge_fade(n, sr, 0.01)[:, None]
    return out


def silence_then_music(duration_s: float = 60.0, sr: int = SR, silence_s: float = 25.0,
                       peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """``silence_s`` of exact digital zeros, then music-like content."""
    n = _frames(duration_s, sr)
    lead = min(n, int(round(silence_s * sr)))
    x = np.zeros((n, 2))
    if n > lead:
        x[lead:] = _normalise(_music((n - lead) / sr, sr, seed=7), peak_dbfs)
    return x.astype(np.float32)


def short_track(duration_s: float = 18.5, sr: int = SR, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """Music-like content, 18.5 s by default."""
    return np.asarray(_normalise(_music(duration_s, sr, seed=11), peak_dbfs), dtype=np.float32)


Generator = Callable[..., np.ndarray]

# name -> (generator, duration_s, description). Generators take duration_s and sr.
TEST_TRACKS: dict[str, tuple[Generator, float, str]] = {
    "sine": (sine, 60.0, "997 Hz sine at -12 dBFS peak: most sensitive click/drop detector"),
    "pink": (pink_noise_stereo, 60.0, "uncorrelated stereo pink noise: a linear crossfade dips ~3 dB"),
    "sweep": (log_sweep, 60.0, "20 Hz-20 kHz log sweep: per-chunk EQ shows as level steps"),
    "timecode": (time_coded, 90.0, "distinct two-tone code per 100 ms slot: locates dropped/repeated spans"),
    "silence-lead": (silence_then_music, 60.0, "25 s digital silence then music-like content"),
    "short": (short_track, 18.5, "18.5 s music-like track, shorter than two chunks"),
}

# Tracks on which a stream's position in the source cannot be told: a tone
# matches itself a period later at every position, and a position in a digital
# silence matches every other (silence-lead's first 25 s). A load that positions
# streams (seeks, resumes) plays the others, or its positions go unjudged: the
# seek-storm on Auralis 94ea76c7 placed none of its normal-path seeks, which
# all landed on the sine.
UNPLACEABLE_TRACKS = frozenset({"sine", "silence-lead"})
