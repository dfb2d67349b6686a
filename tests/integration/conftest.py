"""Fixtures shared by the integration tests of more than one file."""

from __future__ import annotations

from typing import Any

import pytest

_CLUSTER: list[Any] = []  # the running Ray head (tests/ray_cluster.Head), if any


@pytest.fixture
def ray_address():
    """A real one-node Ray cluster on loopback, started by the first test of the "ray" xdist
    group (tests/conftest.py: test_ray and test_pipeline_ray, one after the other on one worker)
    and stopped after its last one (pytest_runtest_teardown below), not left running beside the
    worker's other tests."""
    pytest.importorskip("ray", reason="the Ray executor is tested where nbops[ray] is installed")
    if not _CLUSTER:
        from tests.ray_cluster import ray_cluster

        _CLUSTER.append(ray_cluster())
    return f"127.0.0.1:{_CLUSTER[0].port}"


def _stop_cluster() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()  # the driver connection nbops made in this process
    _CLUSTER.pop().stop()


def pytest_runtest_teardown(item, nextitem):
    if _CLUSTER and (nextitem is None or "ray_address" not in getattr(nextitem, "fixturenames", ())):
        _stop_cluster()


def pytest_sessionfinish(session):
    if _CLUSTER:  # a session ended early (^C, -x): the cluster still goes
        _stop_cluster()
