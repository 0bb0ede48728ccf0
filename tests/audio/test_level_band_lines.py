"""Without a source, a level step on noise-like content is judged by band
lines (analysis.audio.level.band_line_step_db): per octave band a robust
line through a second of 46 ms blocks each side, evaluated at the boundary,
the bands' steps averaged by inverse variance. The 50 ms broadband level it
stands beside is ruled by the bass's few degrees of freedom on pink noise and
scored 1 dB steps at z 0.5-5 there; through the mastering chain (per-chunk
gain ramped over a second, a +-1 dB drift) the band lines must find a 1 dB
butt-joined change at its size, read a smooth join's ramp as no step, and
refuse to call a change of spectral shape a level step."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import sosfilt

import analysis.audio.level as level
from analysis import signals
from analysis.audio import analyse_capture
from analysis.audio.level import band_line_step_db, detect_level_steps
from tests.audio.synth import _shelf_sos, chain_master, per_chunk_master, random_boundaries

SR = 44100


@pytest.fixture(scope="module")
def noise_chain():
    rng = np.random.default_rng(31)  # the benchmark's seeds are 2026 and 4242
    src = signals.pink_noise_stereo(60.0, SR, seed=31)
    b = random_boundaries(len(src), rng)
    return chain_master(src, b, rng), b


def test_a_1_db_step_on_noise_is_found_at_its_size_without_a_source(noise_chain):
    x, b = noise_chain
    assert analyse_capture(x, SR, b).defects == []  # the clean control
    for i, step in ((1, 1.0), (len(b) - 2, -1.0)):
        y = x.copy()
        y[b[i]:] *= np.float32(10 ** (step / 20))
        found = [d for d in analyse_capture(y, SR, b).defects if d.kind == "level_step"]
        assert [d.boundary_index for d in found] == [i], (i, found)
        assert abs(found[0].magnitude - step) < 0.25, found[0].magnitude
        assert found[0].detail["statistic"] == "band lines"


def test_without_band_lines_the_same_step_is_missed(noise_chain, monkeypatch):
    """The test above depends on the new statistic: with it switched off
    (every value NaN) the 50 ms level alone misses the step."""
    x, b = noise_chain
    y = x.copy()
    y[b[1]:] *= np.float32(10 ** (1.0 / 20))
    monkeypatch.setattr(level, "band_line_step_db", lambda x, sr, b, c, **kw: np.full(len(c), np.nan))
    assert detect_level_steps(y, SR, b) == []


def test_a_smooth_joins_ramp_is_no_step():
    """A 3 dB gain ramp over the second after a boundary, as a smooth join
    makes: the line after follows it from the boundary on."""
    x = signals.pink_noise_stereo(20.0, SR, seed=5)
    c = 10 * SR
    ramp_db = np.clip((np.arange(len(x)) - c) / SR, 0, 1) * 3.0
    y = (x * 10 ** (ramp_db / 20)[:, None]).astype(np.float32)
    plain = band_line_step_db(y, SR, np.array([c]), np.array([c]))[0]
    stepped = y.copy()
    stepped[c:] *= np.float32(10 ** (1.0 / 20))
    assert abs(plain) < 0.3, plain
    assert abs(band_line_step_db(stepped, SR, np.array([c]), np.array([c]))[0] - 1.0) < 0.3


def test_a_change_of_spectral_shape_is_not_a_level_step():
    """+-8 dB above 4 kHz from the boundary on: the bands disagree (their
    weighted scatter is far over CONSISTENT_CHI), so no level is claimed."""
    x = signals.pink_noise_stereo(20.0, SR, seed=6)
    c = 10 * SR
    for db in (8.0, -8.0):
        y = x.copy()
        y[c:] = sosfilt(_shelf_sos(db, SR, 4000.0), x, axis=0)[c:]
        assert np.isnan(band_line_step_db(y, SR, np.array([c]), np.array([c]))[0]), db


@pytest.mark.parametrize("content,seed", [("sweep", 1), ("sweep", 42), ("sweep", 46), ("timecode", 4), ("timecode", 16)])
def test_a_clean_sweep_or_time_code_has_no_band_line_steps(content, seed):
    """A sweep entering a band and a time code's 100 ms slots are no level
    plus a trend: their blocks scatter 5-17 dB about a line, such bands are
    left out, and nothing is left to call a step. Without that, each of
    these seeds gave a false step of 1-11 dB (and 10 h of the synthetic
    corpus 14, all on these two contents)."""
    rng = np.random.default_rng(seed)
    pool = signals.log_sweep(duration_s=60.0, sr=SR) if content == "sweep" else signals.time_coded(150.0, SR)
    n = int(59.0 * SR)
    start = int(rng.integers(0, len(pool) - n))
    x = pool[start:start + n]
    b = random_boundaries(len(x), rng)
    assert detect_level_steps(per_chunk_master(x, b, rng), SR, b) == []


def louder_low_bands(seed: int, low_db: float) -> tuple[np.ndarray, int]:
    """Pink noise split at 1 kHz: from the centre on, the part below is
    ``low_db`` louder (an instrument entering, the music's own crescendo);
    the part above is unchanged and beats at random levels (+-9 dB per
    100 ms), so its bands scatter about a line by over LINE_SCATTER_DB and
    the lines leave them out: only the low bands' lines are left, and they
    agree on one step."""
    from scipy.signal import butter

    x = signals.pink_noise_stereo(20.0, SR, seed=seed)
    c = 10 * SR
    low = sosfilt(butter(8, 1000, "low", fs=SR, output="sos"), x, axis=0)
    high = sosfilt(butter(8, 1000, "high", fs=SR, output="sos"), x, axis=0)
    rng = np.random.default_rng(seed)
    beat = np.repeat(10 ** (rng.uniform(-9, 9, len(x) // (SR // 10) + 1) / 20), SR // 10)[: len(x), None]
    low[c:] *= 10 ** (low_db / 20)
    return (low + high * beat).astype(np.float32), c


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_bands_that_did_not_move_say_it_is_content_not_a_gain(seed, monkeypatch):
    """The held-out music-like corpora's two band-line false steps (11.3
    and 9.1 dB) were the low and mid bands getting louder while the top
    octaves' medians moved 0.1-0.4 dB. A gain moves every band, so the
    bands' medians (every band with energy) must agree with the lines'
    step (BAND_AGREE_DB); the same content under a real gain step of that
    size is still read at its size. And the check is what refuses it: with
    it off, the low bands' lines alone call the content a step."""
    y, c = louder_low_bands(seed, 20.0)
    at = np.array([c])
    assert np.isnan(band_line_step_db(y, SR, at, at)[0])
    stepped, _ = louder_low_bands(seed, 0.0)
    stepped[c:] *= np.float32(10 ** (20.0 / 20))
    assert abs(band_line_step_db(stepped, SR, at, at)[0] - 20.0) < 1.5
    # a veto for the positions judged: a reference position keeps the
    # content's value, so the null distribution stays as wide as content makes it
    assert abs(band_line_step_db(y, SR, at, at, judged=0)[0] - 20.0) < 1.5
    monkeypatch.setattr(level, "BAND_AGREE_DB", np.inf)
    assert abs(band_line_step_db(y, SR, at, at)[0] - 20.0) < 1.5
