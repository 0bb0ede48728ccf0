"""`python -m instrument.reference --port N [--inject a,b]`: the reference
backend under plain uvicorn, for development. Runs always go through
instrument.run, which starts it under the agent."""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m instrument.reference",
                                epilog="Timings from the environment: EARSHOT_REF_PING_INTERVAL, "
                                       "EARSHOT_REF_PONG_TIMEOUT, EARSHOT_REF_MAX_STREAMS, "
                                       "EARSHOT_REF_ACQUIRE_TIMEOUT (see app.py).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--inject", default="")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    a = p.parse_args()
    try:
        loopback = a.host == "localhost" or ipaddress.ip_address(a.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(f"error: refusing to bind {a.host}: the reference backend binds to loopback only", file=sys.stderr)
        return 2
    from .session import options_from_env
    from .injections import parse_injections

    try:
        parse_injections(a.inject)
        options_from_env()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.environ["EARSHOT_REF_INJECT"] = a.inject
    import uvicorn

    uvicorn.run("instrument.reference.app:app", host=a.host, port=a.port, loop=a.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
