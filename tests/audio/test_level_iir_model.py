"""With a source, the level step is the jump of the source-relative gain
through an IIR model with its local slope taken out. Through a mastering
chain with shelving EQs and a compressor (tests.audio.synth.chain_master), a
9-tap FIR misfit the 200 Hz shelf and the compressor's attack read as steps
of 0.4-0.7 dB at clean positions of music-like content; a butt-joined 0.5 dB
gain change must be found at its size, and the clean chain gives nothing."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.audio.alignment import _mono
from analysis.audio.level import detect_level_steps, gain_step_db, slope_free_step_db
from analysis.music_corpus import dense_music
from tests.audio.synth import through_chain

SR = 44100


@pytest.fixture(scope="module")
def chained():
    src = dense_music(60.0, SR, seed=77).astype(np.float32)  # the benchmark's seeds are 2026 and 4242
    return (src, *through_chain(src, 77, sr=SR))


def test_clean_positions_of_the_chain_read_flat(chained):
    src, x, b = chained
    at = np.concatenate([b, b + int(0.4 * SR), b + int(1.5 * SR), b + 3 * SR])
    at = at[at < len(x) - SR]
    fir = np.abs(gain_step_db(_mono(x), _mono(src), at, SR))
    iir = np.abs(slope_free_step_db(_mono(x), _mono(src), at, SR))
    assert np.nanmax(iir) < 0.15, np.nanmax(iir)
    assert np.nanmax(iir) < 0.5 * np.nanmax(fir), (np.nanmax(iir), np.nanmax(fir))  # the FIR's misfit, for scale


def test_a_half_db_jump_is_found_at_its_size_and_the_clean_chain_has_none(chained):
    src, x, b = chained
    assert detect_level_steps(x, SR, b, source=src) == []
    for i, step in ((1, 0.5), (len(b) - 2, -0.5)):
        y = x.copy()
        y[b[i]:] *= np.float32(10 ** (step / 20))
        found = detect_level_steps(y, SR, b, source=src)
        assert [d.boundary_index for d in found] == [i], (i, found)
        assert abs(found[0].magnitude - step) < 0.05, found[0].magnitude
