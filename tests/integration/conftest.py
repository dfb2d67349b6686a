"""Fixtures shared by the integration tests of more than one file."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

_CLUSTER: dict[str, ExitStack | str] = {}  # "stack", "address": the running Ray cluster


@pytest.fixture
def ray_address():
    """A real one-node Ray cluster on loopback, started by the first test of the "ray" xdist
    group (tests/conftest.py: test_ray and test_pipeline_ray, one after the other on one worker)
    and stopped after its last one (pytest_runtest_teardown below), not left running beside the
    worker's other tests."""
    pytest.importorskip("ray", reason="the Ray executor is tested where nbops[ray] is installed")
    if not _CLUSTER:
        from tests.ray_cluster import ray_cluster

        stack = ExitStack()
        _CLUSTER["address"] = ray_cluster(stack)
        _CLUSTER["stack"] = stack
    return _CLUSTER["address"]


def _stop_cluster() -> None:
    stack = _CLUSTER.pop("stack", None)
    _CLUSTER.clear()
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()  # the driver connection nbops made in this process
    except ImportError:
        pass
    if isinstance(stack, ExitStack):
        stack.close()


def pytest_runtest_teardown(item, nextitem):
    if _CLUSTER and (nextitem is None or "ray_address" not in getattr(nextitem, "fixturenames", ())):
        _stop_cluster()
