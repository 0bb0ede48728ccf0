"""The reference's tilt filter, written in numpy to keep scipy.signal out of
the backend's launch (instrument/reference/mastering.py), is scipy's
first-order Butterworth high-pass to rounding, from rest, on any length."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from instrument.reference import mastering


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 96000])
def test_coefficients_are_butterworths(sr):
    b, a = mastering.high_pass_coefficients(sr)
    bs, as_ = signal.butter(1, mastering.TILT_HZ, "highpass", fs=sr)
    np.testing.assert_allclose(b, bs, rtol=1e-13)
    np.testing.assert_allclose(a, as_, rtol=1e-13)


@pytest.mark.parametrize("sr", [22050, 44100, 96000])
@pytest.mark.parametrize("n", [1, 2, 63, 64, 1000, 44100 * 3 + 17])
def test_high_pass_is_lfilter_to_rounding(sr, n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    x[n // 2:] *= 1000.0  # a loud half: the block carries must hold across a level change
    want = signal.lfilter(*signal.butter(1, mastering.TILT_HZ, "highpass", fs=sr), x.astype(np.float64), axis=0)
    got = mastering.high_pass(x, sr)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(want).max())
    # mono too (chunk_params filters the mono mix)
    np.testing.assert_allclose(mastering.high_pass(x[:, 0], sr), want[:, 0], rtol=0, atol=1e-11 * np.abs(want).max())


def test_recursion_with_a_pole_near_one_and_a_negative_pole():
    rng = np.random.default_rng(3)
    u = rng.standard_normal(5000)
    for p in (0.999, -0.6, 0.3):
        np.testing.assert_allclose(mastering.first_order_recursion(u, p), signal.lfilter([1.0], [1.0, -p], u),
                                   rtol=0, atol=1e-10)


def test_backend_import_leaves_scipy_signal_out():
    import subprocess
    import sys

    code = "import sys, instrument.reference.app; print('scipy.signal' in sys.modules, 'scipy.stats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
