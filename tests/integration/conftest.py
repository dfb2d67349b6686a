"""Fixtures shared by the integration tests of more than one file."""

from __future__ import annotations

from contextlib import ExitStack

import pytest


@pytest.fixture(scope="session")
def ray_address():
    """A real one-node Ray cluster on loopback, started once for the worker that runs the "ray"
    xdist group (tests/conftest.py), stopped at the end of the session."""
    ray = pytest.importorskip("ray", reason="the Ray executor is tested where nbops[ray] is installed")
    from tests.ray_cluster import ray_cluster

    with ExitStack() as stack:
        address = ray_cluster(stack)
        try:
            yield address
        finally:
            if ray.is_initialized():
                ray.shutdown()  # the driver connection nbops made in this process
