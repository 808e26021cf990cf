"""Hand memory that ingestion freed back to the operating system between batches.

Every batch allocates and frees hundreds of MB (token tensors and attention buffers of a new shape
each time, the batch's texts, vectors and BM25 postings). glibc's malloc keeps much of what was
freed inside its heaps and arenas instead of unmapping it, so without a trim the process's
resident memory ratchets up with the volume ingested although nothing is retained: measured
+400 MiB over 6k chunks, all of it given back by one ``malloc_trim`` (BENCHMARKS.md, "Peak memory
against corpus size"). A trim per batch costs milliseconds against seconds of embedding.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Any | None:
    """glibc's ``malloc_trim``, looked up once; None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim  # glibc only: musl and others have no such symbol
    except (OSError, AttributeError):
        log.debug("malloc_trim unavailable: freed heap memory stays with the process")
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def release_free_heap() -> bool:
    """Return free heap pages to the OS (glibc ``malloc_trim(0)``); False where not available."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
