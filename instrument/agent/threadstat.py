"""The system call a thread is blocked in, from /proc (Linux; elsewhere None).

The watchdog reads the loop thread's with each stack sample of a stall. It
holds the GIL as it reads, so a loop thread caught in Python code is not
running it: it is blocked in a call it made (a sleep, I/O: that line is the
target's), or in a futex: waiting for the GIL, or a lock, that another thread
holds. Seen on CI: a 156 ms stall "in" a generator's yield, the loop thread
neither on a CPU nor in the run queue.

The read must not let the GIL go between the stack and the system call: any
read from Python does (os.read, open), and a loop thread that took the GIL
meanwhile was seen "in epoll_wait" with a stack in an import. So the file is
opened once and read with libc's pread called through ctypes.PyDLL, which
keeps the GIL for the call.
"""
from __future__ import annotations

import ctypes
import os
import platform

# the system calls a waiting thread is seen in, by number (the numbers differ by architecture)
_SYSCALLS = {
    "x86_64": {0: "read", 1: "write", 7: "poll", 23: "select", 35: "nanosleep", 44: "sendto", 45: "recvfrom",
               202: "futex", 230: "clock_nanosleep", 232: "epoll_wait", 270: "pselect6", 271: "ppoll",
               281: "epoll_pwait", 441: "epoll_pwait2", 17: "pread64", 18: "pwrite64", 74: "fsync", 75: "fdatasync"},
    "aarch64": {63: "read", 64: "write", 72: "pselect6", 73: "ppoll", 98: "futex", 101: "nanosleep",
                115: "clock_nanosleep", 206: "sendto", 207: "recvfrom", 22: "epoll_pwait", 67: "pread64",
                68: "pwrite64", 82: "fsync", 83: "fdatasync", 441: "epoll_pwait2"},
}.get(platform.machine(), {})
_TASKS = "/proc/self/task"


def _name(first: str) -> str | None:
    if first == "running":
        return first
    try:
        nr = int(first)
    except ValueError:
        return None
    return _SYSCALLS.get(nr, f"nr:{nr}")


class SyscallReader:
    """One thread's system call, read without letting the GIL go."""

    def __init__(self, native_id: int):
        self.fd: int | None = None
        try:
            libc = ctypes.PyDLL(None, use_errno=True)
            self._pread = libc.pread
            self._pread.restype = ctypes.c_ssize_t
            self._pread.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
            self._buf = ctypes.create_string_buffer(256)
            self.fd = os.open(f"{_TASKS}/{native_id}/syscall", os.O_RDONLY)
        except (OSError, AttributeError):  # not Linux, or /proc/.../syscall not readable (ptrace rules)
            self.fd = None

    def read(self) -> str | None:
        if self.fd is None:
            return None
        n = self._pread(self.fd, self._buf, 255, 0)
        if n <= 0:
            return None
        parts = self._buf.raw[:n].split(maxsplit=1)
        return _name(parts[0].decode("ascii", "replace")) if parts else None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
