"""The server tier: one team stack (PostgreSQL, moto's S3, `mlflow server`) for the session, and
one project trained against it. Started once: it takes ~30-60 s on 2 cores."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.server.stack import TeamServer, start_stack


@pytest.fixture(scope="session")
def team_server(tmp_path_factory) -> TeamServer:
    with ExitStack() as stack:
        yield start_stack(stack, tmp_path_factory.mktemp("team-stack"))


@pytest.fixture(scope="session")
def team_project(team_server, tmp_path_factory):
    """A project whose pyproject points at the team server: `clf` v1 (champion) and v2
    (challenger), trained, registered and promoted through the real CLI."""
    from tests.lifecycle import build_trained_project

    return build_trained_project(tmp_path_factory.mktemp("team") / "proj",
                                 registry=f'tracking_uri = "{team_server.uri}"\n')
