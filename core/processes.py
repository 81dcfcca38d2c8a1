"""Which process holds something, and whether that process is gone.

A worker that is killed (OOM, SIGKILL, or by runtime/workers.py after a hang) leaves behind what
it held: its place at the head of a conversation's turn queue (stores/lock_store.py) and its claim
on a message being answered (core/deliveries.py). Both expire by themselves, after a minute or an
hour; meanwhile the student's retry waits and then gets an apology. Each is now marked with its
holder (`this_process()`), and a process on the same machine and in the same PID namespace that
finds the holder gone (`is_gone()`) may take it over at once. A holder on another machine (several
servers sharing Redis) is never judged gone: there the expiry still decides.

A holder is named by a tag of the machine's boot id and this PID namespace, its pid and its start
time (so that a reused pid is not mistaken for the holder): about 30 ASCII characters.
"""

import functools
import hashlib
import os
from pathlib import Path


@functools.cache
def _host() -> str:
    """Eight hex digits naming this kernel's boot and this PID namespace."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return "unknown"
    return hashlib.sha256(f"{boot}:{namespace}".encode()).hexdigest()[:8]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat, field 22); None when
    there is no such process or it is a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return None
    fields = stat.rsplit(b")", 1)[1].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode("ascii")


@functools.cache
def _this(pid: int) -> str:
    return f"{_host()}.{pid}.{_start_time(pid) or 0}"


def this_process() -> str:
    """The holder name of this process (recomputed in a forked child, whose pid differs)."""
    return _this(os.getpid())


def is_gone(holder: str) -> bool:
    """Whether `holder` names a process of this machine and PID namespace that no longer runs.
    False for anything else: another machine's process, a name that is not a holder's."""
    host, _, rest = holder.partition(".")
    pid, _, start = rest.partition(".")
    if host != _host() or host == "unknown" or not (pid.isascii() and pid.isdigit()):
        return False
    try:
        return _start_time(int(pid)) != start
    except (OSError, IndexError, ValueError):
        return False
