"""The live console: aiomonitor inside the target, on loopback only."""
from __future__ import annotations

import json
from pathlib import Path


def start_monitor(loop, port: int, out: Path):
    import aiomonitor

    mon = aiomonitor.Monitor(loop, host="127.0.0.1", termui_port=port, webui_port=port + 1, console_enabled=False)
    mon.start()
    (out / "monitor.json").write_text(json.dumps({
        "host": "127.0.0.1", "port": port, "webui_port": port + 1,
        "attach": f"python -m aiomonitor.cli -H 127.0.0.1 -p {port}  (or telnet 127.0.0.1 {port})"}))
    return mon
