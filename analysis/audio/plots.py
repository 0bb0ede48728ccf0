"""One PNG per defect: a waveform zoom (capture and aligned source) and a
spectrogram zoom around the defect's time."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_defect(x: np.ndarray, sr: int, time_s: float, out_path: Path, *, title: str = "",
                source=None, wave_half_s: float = 0.01, spec_half_s: float = 0.5) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = int(time_s * sr)
    lo, hi = max(0, c - int(wave_half_s * sr)), min(len(x), c + int(wave_half_s * sr))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), constrained_layout=True)
    t = (np.arange(lo, hi) - c) / sr * 1000
    for ch in range(min(2, x.shape[1])):
        ax1.plot(t, x[lo:hi, ch], lw=0.8, label=f"capture ch{ch}")
    if source is not None and hi > lo:
        ax1.plot(t, np.asarray(source[lo:hi])[:, 0], "k--", lw=0.6, label="source ch0")
    ax1.axvline(0, color="r", lw=0.6)
    ax1.set_xlabel(f"ms from t={time_s:.4f} s")
    ax1.legend(loc="upper right", fontsize=7)
    ax1.set_title(title, fontsize=9)
    lo2, hi2 = max(0, c - int(spec_half_s * sr)), min(len(x), c + int(spec_half_s * sr))
    seg = x[lo2:hi2].mean(axis=1)
    if len(seg) > 512:
        ax2.specgram(seg, NFFT=512, Fs=sr, noverlap=384, xextent=((lo2 - c) / sr, (hi2 - c) / sr), cmap="magma")
    ax2.axvline(0, color="c", lw=0.6)
    ax2.set_xlabel("s from defect")
    ax2.set_ylabel("Hz")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=80)
    plt.close(fig)
    return out_path
