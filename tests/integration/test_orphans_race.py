"""Two nbops processes reaping at once (two `nbops sync` after a server restart): a run the other
process ended or deleted between listing and ending is not an error; a real failure still is."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from nbops.core.run_store import ClientStore
from nbops.run import orphans


def _dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}:1"  # a start time no live process has


@pytest.fixture
def store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("race", artifact_location=(tmp_path / "a").as_uri())
    runs = [client.create_run(exp, tags={orphans.OWNER_TAG: _dead_owner()}).info.run_id for _ in range(2)]
    return ClientStore(client), runs


class OtherProcessFirst(ClientStore):
    """The store as this process sees it while another process deletes GONE right after we listed."""

    def __init__(self, client, gone: str):
        super().__init__(client)
        self.gone, self.listed = gone, False

    def running_runs(self):
        found = super().running_runs()
        if not self.listed:
            self.listed = True
            self.client.set_terminated(self.gone, "KILLED")
            self.client.delete_run(self.gone)
        return found


def test_a_run_deleted_by_another_reaper_is_skipped(store):
    plain, (gone, left) = store
    racing = OtherProcessFirst(plain.client, gone)
    ended = orphans.reap(racing)
    assert [o.run_id for o in ended] == [left]
    assert plain.client.get_run(left).info.status == "KILLED"
    assert plain.client.get_run(left).data.tags[orphans.REAPED_TAG].startswith("its nbops process")
    assert plain.running_runs() == []


class Refusing(ClientStore):
    def set_terminated(self, run_id, status):
        raise OSError("disk full")


def test_a_failure_on_a_run_still_running_is_said(store):
    plain, _ = store
    with pytest.raises(OSError, match="disk full"):
        orphans.reap(Refusing(plain.client))
