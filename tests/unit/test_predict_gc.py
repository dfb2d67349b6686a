"""`nbops predict` loads its model with the cyclic garbage collector off, then freezes what the
load made (lifecycle/predict.py `_kept_for_good`): later collections and the exit skip it."""

from __future__ import annotations

import gc

import pytest

from nbops.lifecycle.predict import _kept_for_good


@pytest.fixture
def restore_gc():
    was = gc.isenabled()
    yield
    gc.unfreeze()  # the test process goes on collecting what these tests froze
    (gc.enable if was else gc.disable)()


def test_the_load_runs_without_collections_and_what_it_made_is_frozen(restore_gc):
    gc.enable()
    gc.unfreeze()
    with _kept_for_good():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]  # objects the collector tracks
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made)
    assert gc.get_count()[0] < 100, "frozen before enabling: no young generation left to walk"


def test_a_failed_load_still_restores_the_collector_as_it_was(restore_gc):
    gc.disable()
    with pytest.raises(RuntimeError), _kept_for_good():
        raise RuntimeError("the model would not load")
    assert not gc.isenabled()
    gc.enable()
    with pytest.raises(RuntimeError), _kept_for_good():
        raise RuntimeError("the model would not load")
    assert gc.isenabled()
