"""The garbage collector's settings (warnpub.gc_tuning): a settled process keeps what it made at
start-up frozen, also after a plan's bulk allocation has come and gone."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator

import pytest

from warnpub import gc_tuning


@pytest.fixture
def pristine() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc_tuning._settled = False
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_freezes_what_lives_and_raises_the_young_threshold(pristine):
    gc.unfreeze()
    kept = [[] for _ in range(1000)]  # lists: tracked by the collector
    frozen = gc_tuning.settle()
    assert frozen > 1000 and gc.get_freeze_count() > 1000
    assert gc.get_threshold()[0] == gc_tuning.SETTLED_YOUNG
    in_sight = {id(o) for o in gc.get_objects()}  # every generation but the frozen one
    assert not any(id(o) in in_sight for o in kept)


def test_a_plan_in_a_settled_process_keeps_the_heap_frozen(pristine):
    gc.unfreeze()
    gc_tuning.settle()
    frozen = gc.get_freeze_count()
    with gc_tuning.bulk_allocation():
        assert gc.get_threshold() == gc_tuning.BULK_THRESHOLDS
        garbage = [[] for _ in range(100)]
        for a, b in itertools.pairwise(garbage):
            a.append(b), b.append(a)  # cycles: only a collection frees them
        del garbage, a, b
    assert gc.get_threshold()[0] == gc_tuning.SETTLED_YOUNG
    # Not unfrozen (a full collection of everything would follow), and nothing more frozen:
    # the plan's garbage is collected as usual.
    assert abs(gc.get_freeze_count() - frozen) < 100
    assert gc.collect() >= 100


def test_a_plan_outside_a_settled_process_leaves_nothing_frozen(pristine):
    gc.unfreeze()
    before = gc.get_threshold()
    with gc_tuning.bulk_allocation():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
