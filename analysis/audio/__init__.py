"""Audio analysis of captured streams: chunk-boundary and crossfade defects.

Each detector is a pure function over arrays (see the modules); `capture`
runs them all over one capture, `run` over a run directory, `__main__` is the
command line for any capture.
"""
from .capture import CaptureResult, analyse_capture
from .defect import KINDS, AudioDefect

__all__ = ["AudioDefect", "CaptureResult", "KINDS", "analyse_capture"]
