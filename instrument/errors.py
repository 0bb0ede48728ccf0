"""What a run can end with, shared by the run, its repeats and comparisons
(so none of them imports another's command line)."""
from __future__ import annotations

import errno

EXIT_PASS, EXIT_FAIL, EXIT_INVALID = 0, 1, 2


class RunError(Exception):
    """Bad input or a failed run; the message is the one-line error."""


class Stopped(KeyboardInterrupt):
    """The run was asked to stop by a signal; str() names which, e.g.
    'Ctrl-C (SIGINT)' or 'SIGTERM'. A KeyboardInterrupt so that every
    existing interrupt path (cleanup, repeats) treats both alike."""


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_message(e: OSError) -> str:
    where = f" writing {e.filename}" if getattr(e, "filename", None) else ""
    return f"disk full: no space left on device{where}"
