"""The other worker processes of this server, and how a request reaches one of them.

The workers of one server share its port (runtime/workers.py): the kernel hands each new
connection to any of them. Most requests do not care which, but a few are about state that lives
in one worker's memory (an engine.io long-polling session, channels/socketio.py). So each worker
also listens on a Unix socket of its own, `path(slot)`, in a folder that the supervisor creates
for this server (mode 0700: only this server's user can connect), and a worker that receives a
request for a sibling's state passes it on there.

The supervisor calls `configure` before it forks; each worker calls `become` with its slot. In a
process that is not a supervised worker (one `rasa run` without workers, a test, a script),
`slot()` is None and there is nobody to pass anything to.
"""

import os
from dataclasses import dataclass


@dataclass
class _Siblings:
    folder: str = ""
    count: int = 0
    slot: int | None = None


_THIS = _Siblings()


def configure(folder: str, count: int) -> None:
    """In the supervisor, before its workers are forked: where they listen, and how many."""
    _THIS.folder, _THIS.count, _THIS.slot = folder, count, None


def become(slot: int) -> None:
    """In a worker, first thing after the fork: which slot it serves."""
    _THIS.slot = slot


def slot() -> int | None:
    """The slot of this worker (0, 1, …), or None outside supervised workers."""
    return _THIS.slot


def count() -> int:
    """How many workers this server runs (0 outside supervised workers)."""
    return _THIS.count if _THIS.slot is not None else 0


def path(slot: int) -> str:
    """The Unix socket that worker `slot` listens on for its siblings."""
    return os.path.join(_THIS.folder, f"worker-{slot}.sock")


def parse_slot(text: str) -> int | None:
    """`text` as the slot of one of this server's workers, or None when it names none (the
    text comes from a client: anything else is not a slot)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 3):
        return None
    number = int(text)
    return number if number < count() else None
