"""Ctrl-C and SIGTERM stop Blender render loops between frames.

A signal handler's `KeyboardInterrupt` raised while Blender runs a Python callback (the Cycles render call is one)
is printed and swallowed by Blender, and rendering goes on. So inside `stop_on_signals()` SIGINT and SIGTERM are
only recorded, and the loop calls `checkpoint()` after each frame (at most one frame later, under a second at
720x480), which raises `KeyboardInterrupt` where it propagates:
through the atomic writers, which remove this process's temporaries, and through Dagster, which marks the run
failed and frees its slots.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_received: list[int] = []


def _record(signum: int, frame) -> None:
    _received.append(signum)


def checkpoint() -> None:
    """Raise `KeyboardInterrupt` if SIGINT or SIGTERM arrived inside `stop_on_signals()` (a safe point of a loop)."""
    if _received:
        raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Record SIGINT and SIGTERM for `checkpoint()` during the block (main thread only; the previous handlers,
    Dagster's included, are restored after it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _received.clear()
    for s in previous:
        signal.signal(s, _record)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _received.clear()
