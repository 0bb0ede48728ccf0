"""report.html in a real headless browser: Debian's chromium renders it and a
screenshot is taken; the screenshot must exist and not be blank."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from reports import render_all

from .synthetic import make_run_dir

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    rd = make_run_dir(tmp_path)
    render_all(rd)
    shot = tmp_path / "report.png"
    profile = tmp_path / "chromium-profile"
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2000",
        (rd / "report.html").resolve().as_uri(),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert shot.exists() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] == 2000 and img.shape[1] == 1280
    rgb = img[..., :3].astype(np.float64)
    assert rgb.std() > 0.05, "screenshot is blank"
    # the verdict banner (FAIL, red) fills the top of the page
    top = rgb[10:60, 10:1270].reshape(-1, 3).mean(axis=0)
    assert top[0] > 0.6 and top[1] < 0.3 and top[2] < 0.3, top
    # and the rest of the page has content: many distinct rows differ from the background
    body = rgb[200:1900]
    assert (body.std(axis=(1, 2)) > 0.02).mean() > 0.3
