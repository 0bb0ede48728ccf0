"""Whole-run CPU profiles, started before the loop runs and written at
shutdown: pyinstrument (HTML + speedscope JSON) or yappi (pstats + callgrind,
wall clock, coroutine-aware)."""
from __future__ import annotations

from pathlib import Path


class _Pyinstrument:
    def __init__(self, out: Path):
        from pyinstrument import Profiler

        self.out = out
        # async_mode="disabled": we profile the whole process, not one task
        self.p = Profiler(interval=0.001, async_mode="disabled")
        self.p.start()

    def stop(self) -> None:
        from pyinstrument.renderers import HTMLRenderer, SpeedscopeRenderer

        session = self.p.stop()
        (self.out / "profile.html").write_text(HTMLRenderer().render(session))
        (self.out / "profile.speedscope.json").write_text(SpeedscopeRenderer().render(session))
        (self.out / "profile.txt").write_text(self.p.output_text(unicode=False, color=False, show_all=False))


class _Yappi:
    def __init__(self, out: Path):
        import yappi

        self.out = out
        self.y = yappi
        yappi.set_clock_type("wall")  # wall time, so awaits show where coroutines wait
        yappi.start(builtins=False)

    def stop(self) -> None:
        y = self.y
        y.stop()
        stats = y.get_func_stats()
        stats.save(str(self.out / "profile.pstats"), type="pstat")
        stats.save(str(self.out / "callgrind.out"), type="callgrind")
        with open(self.out / "profile.txt", "w") as fh:
            stats.sort("ttot", "desc").print_all(out=fh)


def start_profiler(kind: str, out: Path):
    if kind == "pyinstrument":
        return _Pyinstrument(out)
    if kind == "yappi":
        return _Yappi(out)
    raise ValueError(kind)
