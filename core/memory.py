"""Handing freed memory back to the system.

glibc's malloc keeps what a thread freed in that thread's arena: after a screenshot's OCR (tens of
MB of image and tensor buffers in the reader's thread) or a model load, a worker's resident memory
stays at its peak. malloc_trim(0) returns the free pages of every arena.
"""

import ctypes
import functools
import gc
from typing import Any


@functools.cache
def _libc() -> Any:
    """The process's own symbols, libc's among them: ctypes.util.find_library would start
    ldconfig to find the file, a process the server has no need to start."""
    return ctypes.CDLL(None)


def hand_back_free_memory(collect: bool = True) -> bool:
    """Returns the C heap's free pages to the system (glibc's malloc_trim); False elsewhere."""
    if collect:
        gc.collect()
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        return False
    return True
