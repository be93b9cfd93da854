"""Process-level memory settings."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's mallopt parameter number for the arena cap


def cap_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for threads that allocate from now on (``MALLOC_ARENA_MAX``, set at run time).

    A server that hands work to many threads otherwise gets up to 8 arenas per core, and their fragmentation shows
    as resident memory that creeps up request after request. Returns whether the cap was set (False off glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = bool(libc.mallopt(_M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):
        return False
    if ok:
        logger.info("malloc arenas capped at %d", arenas)
    return ok
