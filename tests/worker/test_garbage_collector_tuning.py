"""The worker's garbage collector tuning (issue 18 item 3): young collections are rarer,
what the imports left is frozen out of later collections, and cyclic garbage is still
reclaimed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from reference_app.worker.run import GC_YOUNG_THRESHOLD, tune_garbage_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Node:
    """One half of a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.mark.usefixtures("restored_collector")
def test_young_collections_are_rarer_and_the_imports_are_frozen() -> None:
    _, middle, old = gc.get_threshold()

    tune_garbage_collector()

    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, middle, old)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored_collector")
def test_a_reference_cycle_made_after_the_tuning_is_still_collected() -> None:
    tune_garbage_collector()
    first, second = Node(), Node()
    first.other, second.other = second, first
    alive = weakref.ref(first)
    del first, second

    assert alive() is not None  # only the cyclic collector frees a cycle
    gc.collect()
    assert alive() is None
