"""One PNG per defect: a waveform zoom (capture and aligned source) and a
spectrogram zoom around the defect's time."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# Fixed margins, not constrained layout: the layout engine measures every
# text's extent before drawing, which took 40% of each plot (0.38 s against
# 0.23 s a plot), and these figures' labels never change length much.
DEFECT_MARGINS = dict(left=0.08, right=0.98, top=0.94, bottom=0.08, hspace=0.3)
TRACE_MARGINS = dict(left=0.1, right=0.97, top=0.93, bottom=0.11)


def plot_defect(x: np.ndarray, sr: int, time_s: float, out_path: Path, *, title: str = "",
                source=None, wave_half_s: float = 0.01, spec_half_s: float = 0.5) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = int(time_s * sr)
    lo, hi = max(0, c - int(wave_half_s * sr)), min(len(x), c + int(wave_half_s * sr))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6))
    fig.subplots_adjust(**DEFECT_MARGINS)
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
        # digital silence (a gap, a stream's lead-in) has zero power: its dB
        # is -inf and is drawn as the colour map's floor, which is what it is
        with np.errstate(divide="ignore"):
            ax2.specgram(seg, NFFT=512, Fs=sr, noverlap=384, xextent=((lo2 - c) / sr, (hi2 - c) / sr),
                         cmap="magma")
    ax2.axvline(0, color="c", lw=0.6)
    ax2.set_xlabel("s from defect")
    ax2.set_ylabel("Hz")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=80)
    plt.close(fig)
    return out_path


def plot_position_trace(pos, out_path: Path, *, title: str = "") -> Path:
    """Output time against source time for one stream (a PositionResult):
    where each window of the capture lies in the source, the requested
    position marked, the line a correct stream follows drawn, and each jump
    marked. An offset, a replay or a jump is visible at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = pos.trace
    t, src = tr.times_s(), tr.source_s()
    known = np.isfinite(src)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    fig.subplots_adjust(**TRACE_MARGINS)
    end_t = tr.n_frames / tr.sr
    if pos.requested_s is not None:
        ax.plot([0, end_t], [pos.requested_s, pos.requested_s + end_t], color="0.6", lw=1.0, ls="--",
                label=f"as requested (from {pos.requested_s:.2f} s)")
        ax.plot([0], [pos.requested_s], "o", color="tab:green", ms=8, label="requested position")
    ax.plot(t[known], src[known], ".", color="tab:blue", ms=3, label="measured source position")
    for j in pos.jumps:
        ax.axvline(j["time_s"], color="tab:red", lw=0.8)
        ax.annotate(f"{j['size_s']:+.2f} s", (j["time_s"], j["to_s"]), fontsize=8, color="tab:red",
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("stream (output) time, s")
    ax.set_ylabel("source time, s")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    ax.grid(alpha=0.3)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=80)
    plt.close(fig)
    return out_path
