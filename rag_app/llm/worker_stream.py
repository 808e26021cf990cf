"""A generation run on a worker thread, its text deltas handed to the caller as an iterator.

The in-process llama.cpp backends generate in native code that must not be abandoned halfway with a
lock held: the worker owns the model for the whole generation, the consumer reads a queue, and a
consumer that leaves early (a stop string, a closed connection) sets ``cancelled``, which the
producer checks between tokens.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .base import LLMUnavailableError

Emit = Callable[[str], None]
Producer = Callable[[Emit, threading.Event], None]

_DONE = object()  # end of a stream in the delta queue


def stream_from_worker(produce: Producer, *, label: str) -> Iterator[str]:
    """Run ``produce(emit, cancelled)`` on a daemon thread and yield what it emits, in order.

    An exception in the producer ends the stream with :class:`LLMUnavailableError` in the consumer's
    thread (one that already is one passes through unchanged)."""
    deltas: queue.Queue[Any] = queue.Queue()
    cancelled = threading.Event()

    def run() -> None:
        try:
            produce(deltas.put, cancelled)
        except LLMUnavailableError as exc:
            deltas.put(exc)
        except Exception as exc:  # surfaces in the consumer's thread
            deltas.put(LLMUnavailableError(f"{label} failed: {exc}"))
        finally:
            deltas.put(_DONE)

    threading.Thread(target=run, name=f"{label}-generate", daemon=True).start()
    try:
        while (item := deltas.get()) is not _DONE:
            if isinstance(item, Exception):
                raise item
            if item:
                yield item
    finally:
        cancelled.set()
