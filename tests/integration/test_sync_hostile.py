"""`nbops sync` trusts no entry: seven hostile entries (the audit's) beside a good one, synced into a
real MLflow store that holds someone else's FINISHED run. Each hostile entry is quarantined with
one line saying why, the good one is uploaded, the other run is untouched, no run is RUNNING, and
no file outside an entry is ever read (a symlink to /etc/passwd is not followed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbops.run import spool
from tests.conftest import all_runs


def _record(**changes):
    record = {"experiment": "notebooks/a", "run_name": "a", "notebook": "notebooks/a.ipynb",
              "tags": {"nbops.notebook": "notebooks/a.ipynb"}, "params": {"n": "3"},
              "metrics": spool.metric_rows({"acc": 0.9}, timestamp_ms=1000), "status": "FINISHED",
              "model": None, "start_time": 1000, "end_time": 2000, "claim_key": spool.new_id()}
    record.update(changes)
    return record


def _write(root: Path, tmp: Path, models=(), **changes) -> Path:
    nb = tmp / "out.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    entry, _ = spool.write(root, _record(**changes), {"notebook/out.ipynb": nb}, list(models))
    return entry


LOG_MODEL = ("import sys, mlflow\n"
             "from sklearn.linear_model import LogisticRegression\n"
             "with mlflow.start_run(run_id=sys.argv[1]):\n"
             "    mlflow.sklearn.log_model(LogisticRegression().fit([[0], [1], [2], [3]], [0, 0, 1, 1]), name='model')")


def _sync(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbops", "sync", *args], cwd=project, capture_output=True,
                          text=True, timeout=180)


def test_seven_hostile_entries_are_quarantined_and_nothing_else_changes(project, mlflow_client, tmp_path):
    client = mlflow_client()
    exp = client.create_experiment("someone-else")
    theirs = client.create_run(exp, tags={"owner": "them"}).info.run_id
    client.log_metric(theirs, "acc", 0.5)
    client.set_terminated(theirs, "FINISHED")
    before = client.get_run(theirs)

    root = spool.spool_root(project)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    hostile = {
        "did not create": _write(root, tmp_path, server_run_id=theirs),
        "params is not": _write(root, tmp_path, params=["a", "b"]),
        "no experiment": _write(root, tmp_path, experiment=""),
        "RUNNING": _write(root, tmp_path, status="RUNNING"),
    }
    corrupt = _write(root, tmp_path, models=[({"name": "model", "model_type": None}, model_dir)])
    (corrupt / "models" / "0" / "model.json").write_text("{not json")
    hostile["not a model description"] = corrupt
    truncated = _write(root, tmp_path)
    text = (truncated / spool.RECORD).read_text()
    (truncated / spool.RECORD).write_text(text[: len(text) // 2])
    hostile["not a spool record"] = truncated
    linked = _write(root, tmp_path)
    os.symlink("/etc/passwd", linked / "artifacts" / "notebook" / "passwd")
    hostile["is a symlink"] = linked
    good = _write(root, tmp_path, run_name="good")
    good_claim = spool.claim(json.loads((good / spool.RECORD).read_text())["claim_key"])

    listed = _sync(project, "--list")
    assert listed.returncode == 0 and "8 run(s) wait" in listed.stdout, listed.stdout + listed.stderr
    assert len([line for line in listed.stdout.splitlines() if line.startswith(good.name)]) == 1

    done = _sync(project)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 7 and all(line.startswith("quarantined ") for line in lines), lines
    for why, entry in hostile.items():
        (line,) = [line for line in lines if entry.name in line]
        assert why in line, (why, line)
        assert (root / "quarantine" / entry.name / spool.WHY).is_file(), why
    assert "synced notebooks/a.ipynb: run" in done.stdout

    after = client.get_run(theirs)
    assert after.info.status == "FINISHED" and after.data.tags == before.data.tags
    assert after.data.metrics == before.data.metrics and not client.list_artifacts(theirs)
    runs = all_runs(client)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    uploaded = [r for r in runs if r.info.run_id != theirs]
    assert len(uploaded) == 1 and uploaded[0].data.tags["nbops.spool_id"] == good_claim
    assert uploaded[0].data.params == {"n": "3"} and uploaded[0].data.metrics == {"acc": 0.9}
    paths = [a.path for a in client.list_artifacts(uploaded[0].info.run_id, "notebook")]
    assert paths == ["notebook/out.ipynb"]
    assert spool.entries(root) == []  # the quarantine is no entry: nothing blocks a later sync
    again = _sync(project)
    assert again.returncode == 0 and "nothing to sync" in again.stdout
    assert not (root / "quarantine" / good.name).exists()


def test_links_planted_in_the_spool_move_and_overwrite_nothing_outside_it(project, mlflow_client, tmp_path):
    """A bad entry's `why.txt` linked to a file of the user's: replaced, the file untouched. A
    `quarantine` linked to a folder elsewhere (where a moved folder would run: a site-packages):
    the bad entry stays in the spool, said on one line, and nothing lands in that folder."""
    mlflow_client()
    root = spool.spool_root(project)
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's\n")
    bad = _write(root, tmp_path, status="RUNNING")
    os.symlink(victim, bad / spool.WHY)
    done = _sync(project)
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert victim.read_text() == "the user's\n"
    why = root / "quarantine" / bad.name / spool.WHY
    assert not why.is_symlink() and "why.txt is a symlink" in why.read_text()

    outside = tmp_path / "site-packages"
    outside.mkdir()
    (root / "quarantine").rename(tmp_path / "kept-quarantine")
    os.symlink(outside, root / "quarantine")
    planted = _write(root, tmp_path, status="RUNNING")
    done = _sync(project)
    out = done.stdout + done.stderr
    assert done.returncode == 4 and "Traceback" not in out, out
    (line,) = [line for line in out.splitlines() if planted.name in line]
    assert line.startswith(f"not synced {planted.name}: ") and "is not a folder" in line, line
    assert list(outside.iterdir()) == [] and (planted / spool.RECORD).is_file()


def test_a_forged_entry_naming_anothers_run_by_its_public_tag_changes_nothing(project, mlflow_client, tmp_path):
    """Runs a spool entry made (or a Ray kernel logs directly) carry the entry's claim, a digest of
    a key that never leaves the spool (not even its spool id, which nbops prints). A forger who
    copies that public tag into an entry, as its claim_key or spool_id, with or without the run
    as its `server_run_id`, never reaches the run; nor does an old-style entry (no claim_key)
    naming a run an older nbops tagged with a spool id: such runs are only read."""
    from nbops.run.upload import UPLOADED_TAG

    client = mlflow_client()
    exp = client.create_experiment("notebooks/a")
    victims = {}
    for name, tag, extra in (("claimed", spool.claim(spool.new_id()), {}),
                             ("old, uploaded", spool.new_id(), {UPLOADED_TAG: "uploaded"}),
                             ("old, partial", spool.new_id(), {})):
        run_id = client.create_run(exp, tags={spool.SPOOL_TAG: tag, "owner": "them", **extra}).info.run_id
        client.log_metric(run_id, "acc", 0.5)
        if name == "old, uploaded":  # their model: never registered by someone else's entry
            logged = subprocess.run([sys.executable, "-c", LOG_MODEL, run_id], cwd=project, capture_output=True,
                                    text=True, timeout=180, env={**os.environ, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"})
            assert logged.returncode == 0, logged.stderr
        client.set_terminated(run_id, "FINISHED")
        victims[name] = (run_id, tag, client.get_run(run_id))

    root = spool.spool_root(project)
    run_id, tag, _ = victims["claimed"]
    replacing = _write(root, tmp_path, claim_key=tag, server_run_id=run_id, status="FAILED")
    done = _sync(project)
    assert done.returncode == 2 and f"quarantined {replacing.name}: " in done.stderr, done.stdout + done.stderr
    assert "names a run this entry did not create" in done.stderr
    forged = [_write(root, tmp_path, claim_key=tag, status="KILLED"),
              _write(root, tmp_path, spool_id=tag, status="KILLED")]
    for name in ("old, uploaded", "old, partial"):
        run_id, tag, _ = victims[name]
        forged.append(_write(root, tmp_path, spool_id=tag, server_run_id=run_id, status="FAILED", end_time=1,
                             claim_key=None,  # as an older nbops wrote them
                             model={"name": "stolen", "gates": [], "register": True, "gates_held": True}))
    done = _sync(project)
    assert done.returncode == 0 and done.stdout.count("synced notebooks/a.ipynb") == 4, done.stdout + done.stderr

    for name, (run_id, _, before) in victims.items():
        after = client.get_run(run_id)
        assert (after.info.status, after.info.lifecycle_stage, after.info.end_time) == \
            (before.info.status, "active", before.info.end_time), name
        assert after.data.tags == before.data.tags and after.data.metrics == before.data.metrics, name
    made = [r for r in all_runs(client) if r.info.run_id not in {v[0] for v in victims.values()}]
    assert len(made) == 3  # the forged old-style entry naming an uploaded run counts as delivered by it
    assert spool.entries(root) == []
    assert not client.search_model_versions("name = 'stolen'")  # no version made of their run


def test_a_forged_parked_run_uploads_no_file_from_outside_it(project, mlflow_client, tmp_path):
    """A parked run (run/parked.py) is trusted no more than an entry: a `parked.json` naming a file
    outside its folder, or a link inside it to one, makes no entry and uploads nothing; the
    folder is kept and `nbops sync` says why on one line."""
    from nbops.run import parked

    client = mlflow_client()
    secret = tmp_path / "secret.txt"
    secret.write_text("the user's key\n")
    root = spool.spool_root(project)
    root.mkdir(parents=True, exist_ok=True)
    folders = {}
    for how, where in (("outside", str(secret)), ("up", "../../../secret.txt"), ("link", "kept/0/link.txt")):
        sid = spool.new_id()
        folder = root / f"{parked.PREFIX}{sid}"
        (folder / "kept" / "0").mkdir(parents=True)
        if how == "link":
            os.symlink(secret, folder / "kept" / "0" / "link.txt")
        (folder / parked.PARKED).write_text(json.dumps({"record": {**_record(), "spool_id": sid},
                                                        "files": {"notebook/x.txt": where}, "models": []}))
        folders[how] = folder
    done = _sync(project)
    out = done.stdout + done.stderr
    assert done.returncode == 4 and "Traceback" not in out, out
    for how, folder in folders.items():
        (line,) = [line for line in out.splitlines() if folder.name[len(parked.PREFIX):] in line]
        assert "is not a file of its own" in line, (how, line)  # a link is not in the snapshot
        assert folder.is_dir()
    assert all_runs(client) == [] and not spool.entries(root)


@pytest.mark.parametrize("swapped", ["file", "folder"])
def test_a_file_swapped_for_a_link_after_the_check_is_never_uploaded(project, mlflow_client, tmp_path, swapped):
    """The window a racing writer of the spool has: the entry was validated (as `nbops sync` does
    under its lock), then a file or a folder of it is swapped for a link to the user's key. The
    upload reads a snapshot that follows no link: the entry is refused as a bad one (sync
    quarantines it), no run is made, nothing of the key reaches the store, no snapshot is left."""
    from nbops.run import upload

    client = mlflow_client()
    secret = tmp_path / "keys" / "out.ipynb"
    secret.parent.mkdir()
    secret.write_text("PRIVATE KEY\n")
    root = spool.spool_root(project)
    entry = _write(root, tmp_path)
    record = spool.validate(entry)
    target = entry / "artifacts" / "notebook" / ("out.ipynb" if swapped == "file" else "")
    if swapped == "file":
        target.unlink()
    else:
        shutil.rmtree(target)
    os.symlink(secret if swapped == "file" else secret.parent, target)

    def experiment_id(name: str) -> str:
        found = client.get_experiment_by_name(name)
        return found.experiment_id if found else client.create_experiment(name)

    with pytest.raises(spool.BadEntry, match="is a symlink"):
        upload.deliver(client, "sqlite:///mlflow.db", experiment_id, entry, record, None)
    assert all_runs(client) == [] and not list(root.glob(".tmp-snap-*"))


def test_a_snapshot_being_uploaded_is_never_swept_however_long_it_takes(project, tmp_path):
    """The upload's snapshot sits in the spool; another nbops sweeps what dead ones left there.
    One older than the sweep's hour whose nbops is alive (a large model to a slow S3) stays."""
    from nbops.run import localrun
    from nbops.run.snapshot import snapshot

    entry = _write(spool.spool_root(project), tmp_path)
    with snapshot(entry) as snap:
        hours_ago = time.time() - 7200
        os.utime(snap.parent, (hours_ago, hours_ago))
        localrun.sweep_dead(project)
        assert (snap / spool.RECORD).is_file()
    assert not list(spool.spool_root(project).glob(".tmp-snap-*"))


def test_a_parked_run_with_a_link_its_kernel_made_is_still_uploaded(project, mlflow_client, tmp_path):
    """A kernel may leave a link among its artifacts (MLflow logs no file of it; collect skips
    it): a parked run's snapshot leaves it out, and the files parked.json names are uploaded."""
    from nbops.run import parked

    client = mlflow_client()
    root = spool.spool_root(project)
    sid = spool.new_id()
    folder = root / f"{parked.PREFIX}{sid}"
    (folder / "artifacts" / "notebook").mkdir(parents=True)
    (folder / "artifacts" / "notebook" / "out.ipynb").write_text('{"cells": []}')
    os.symlink("/etc/passwd", folder / "artifacts" / "passwd")
    (folder / parked.PARKED).write_text(json.dumps({"record": {**_record(), "spool_id": sid},
                                                    "files": {"notebook/out.ipynb": "artifacts/notebook/out.ipynb"},
                                                    "models": []}))
    done = _sync(project)
    assert done.returncode == 0 and "synced notebooks/a.ipynb" in done.stdout, done.stdout + done.stderr
    [run] = all_runs(client)
    assert [a.path for a in client.list_artifacts(run.info.run_id, "notebook")] == ["notebook/out.ipynb"]
    assert not folder.exists() and not list(root.iterdir())
