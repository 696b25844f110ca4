"""Services tune the garbage collector once started (`iioe.runtime.service.tune_garbage_collector`)."""

from __future__ import annotations

import gc

from iioe.runtime.service import GC_THRESHOLD, tune_garbage_collector


def test_startup_objects_are_frozen_and_young_collections_are_rarer() -> None:
    before = gc.get_threshold()
    gc.unfreeze()  # a service started in-process by an earlier test may have tuned it already
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    try:
        assert gc.get_freeze_count() == 0
        tune_garbage_collector()
        assert gc.get_threshold() == GC_THRESHOLD
        assert GC_THRESHOLD[0] > 700
        assert gc.get_freeze_count() > 1000, "modules, models and the app are out of the collector's way"
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
