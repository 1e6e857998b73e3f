"""SIGTERM as an exception: how a scheduler stops a job (SLURM's time limit, `scancel`,
preemption) before it kills it outright (SIGKILL, `KillWait` seconds later).

A script turned into `Terminated` unwinds its `finally` blocks, so no half-written
output stays behind. Inside `deferred()` (the optimisation loop) the signal is only
noted: the loop finishes its step, saves its checkpoint and then raises, so a stopped
run loses nothing it could have kept.
"""

import contextlib
import signal
from collections.abc import Iterator


class Terminated(BaseException):  # noqa: N818 (not an error: a request to stop)
    """The process was asked to stop (SIGTERM). A BaseException, so that no
    `except Exception` in a library swallows it."""


_requested = False
_deferring = 0


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Within this block (main thread only) SIGTERM raises `Terminated`."""
    global _requested
    _requested = False
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _requested = False


def _on_sigterm(signum, frame) -> None:
    global _requested
    _requested = True
    if not _deferring:
        raise Terminated("stopped by SIGTERM")


def requested() -> bool:
    """Whether SIGTERM arrived while it was deferred."""
    return _requested


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside this block SIGTERM only sets `requested()`; the block checks it at a point
    where it can save its state, then raises `Terminated` itself."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
