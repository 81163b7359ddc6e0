"""The garbage collector in a long-running process, and while a million short-lived objects are
made (targeting, plans).

A full collection walks every object that has survived two younger ones, every thread stopped.
Once `warnpub serve` is up, that is some 190,000 objects — modules, mappers, templates, the
area tree — that live as long as the process; under load (a large send while agencies submit)
a full collection came every 3–5 s and stopped everything for 60–150 ms, holding SQLite's write
turn meanwhile (bench/load.py, docs/performance.md). :func:`settle` collects once and freezes
what survives (``gc.freeze``: full collections then walk only what was made since) and raises
the young generation's threshold, so that a request's objects die young instead of being
promoted while in flight.

Targeting a city makes a million small tuples that live only as long as their batch. With the
default thresholds most of them were promoted to the oldest generation, and every few tens of
thousands of them triggered a full collection: on a million people about a third of the run.
:func:`bulk_allocation` freezes what exists and raises the young threshold further while it
runs. The settings are process-wide and reference-counted: the last user to leave restores
them and unfreezes. A settled process keeps its start-up heap frozen throughout: a plan there
only raises the thresholds (unfreezing at its end meant a full collection of the whole heap,
111 ms with everything stopped, in the middle of the send).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("warnpub.gc")

# A settled process: young collections every 10,000 allocations instead of 700.
SETTLED_YOUNG = 10_000
# Young collections every 50,000 allocations: a batch (5,000 targets) dies within one
# generation; a few megabytes more at most are held between collections.
BULK_THRESHOLDS = (50_000, 20, 100)

_users = 0
_saved: tuple[int, int, int] | None = None
_settled = False
_lock = threading.Lock()


def settle() -> int:
    """For a long-running process once it has started: collect, freeze what survives, raise
    the young threshold. Returns how many objects are frozen."""
    global _settled, _saved
    with _lock:
        _settled = True
        _, middle, old = gc.get_threshold()
        if _users:  # a plan is running: what it froze stays frozen; leave() restores
            assert _saved is not None
            _saved = (SETTLED_YOUNG, _saved[1], _saved[2])
        else:
            gc.collect()
            gc.freeze()
            gc.set_threshold(SETTLED_YOUNG, middle, old)
        frozen = gc.get_freeze_count()
    log.info("heap settled", extra={"frozen_objects": frozen})
    return frozen


def enter() -> None:
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = gc.get_threshold()
            if not _settled:
                gc.freeze()
            gc.set_threshold(*BULK_THRESHOLDS)
        _users += 1


def leave() -> bool:
    """Restore the settings if this was the last user; True when it was."""
    global _users
    with _lock:
        _users -= 1
        if _users:
            return False
        if _saved is not None:
            gc.set_threshold(*_saved)
        if not _settled:
            gc.unfreeze()
        return True


@contextmanager
def bulk_allocation() -> Iterator[None]:
    enter()
    try:
        yield
    finally:
        leave()
