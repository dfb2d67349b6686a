"""`nbops run --jobs N`: the same results as one at a time, and every notebook in a fresh kernel."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from nbops.cli.main import main
from tests.conftest import all_runs, write_notebook


def trivial(root, i):
    return write_notebook(root / "notebooks" / f"nb{i}.ipynb", [
        ("code", f"n = {i}", ["parameters"]),
        ("code", "import os, nbops\nnbops.record('square', n * n)\nnbops.record('pid', os.getpid())"),
    ])


def records_by_notebook(client):
    out = {}
    for run in all_runs(client):
        path = client.download_artifacts(run.info.run_id, "nbops/records.json")
        with open(path) as f:
            records = json.load(f)
        out[run.data.tags["nbops.notebook"]] = (records["square"], run.data.params["n"],
                                                run.info.status, records["pid"])
    return out


def test_jobs_2_gives_the_same_runs_as_jobs_1(project, mlflow_client, capsys, monkeypatch):
    paths = [str(trivial(project, i)) for i in range(4)]
    assert main(["run", *paths, "--jobs", "1", "--experiment", "serial"]) == 0
    assert main(["run", *paths, "--jobs", "2", "--experiment", "parallel"]) == 0
    client = mlflow_client()
    serial, parallel = {}, {}
    for exp_name, target in (("serial", serial), ("parallel", parallel)):
        exp = client.get_experiment_by_name(exp_name)
        for run in client.search_runs([exp.experiment_id]):
            with open(client.download_artifacts(run.info.run_id, "nbops/records.json")) as f:
                records = json.load(f)
            target[run.data.tags["nbops.notebook"]] = (records["square"], run.data.params, run.info.status,
                                                       run.data.metrics["square"])
    assert serial == parallel and len(serial) == 4
    assert serial["notebooks/nb3.ipynb"][0] == 9
    # one summary row per notebook and run, each with status ok
    rows = re.findall(r"│\s*(notebooks/nb\d\.ipynb)\s*│\s*(\w+)\s*│", capsys.readouterr().out)
    assert sorted(rows) == sorted((f"notebooks/nb{i}.ipynb", "ok") for i in range(4) for _ in range(2))


def test_each_notebook_gets_a_fresh_kernel(project, capsys):
    setter = write_notebook(project / "notebooks" / "setter.ipynb", [
        ("code", "import builtins, nbops\nshared_state = 42\nbuiltins.nbops_leak = 1\nnbops.record('set', 1)"),
    ])
    reader = write_notebook(project / "notebooks" / "reader.ipynb", [
        ("code", "import builtins, nbops\n"
                 "assert 'shared_state' not in globals(), 'saw another run\\'s global'\n"
                 "assert not hasattr(builtins, 'nbops_leak'), 'saw another run\\'s builtins'\n"
                 "nbops.record('clean', 1)"),
    ])
    for jobs in ("1", "2"):
        assert main(["run", str(setter), str(reader), str(setter), str(reader), "--jobs", jobs,
                     "--no-track"]) == 0, capsys.readouterr().out


def test_parallel_runs_use_each_notebooks_own_folder(project, mlflow_client, capsys, monkeypatch):
    """Relative paths and each kernel's working directory hold under --jobs, also after another
    run in the same process: papermill's local file handler kept a working directory between
    runs (set and restored racily by threads) and chdir'ed the whole process to it around every
    save, so relative paths resolved in a previous run's project."""
    code = "import os, nbops\nnbops.record('cwd', os.getcwd())"
    rels = []
    for folder in ("notebooks", "notebooks/deeper"):
        for i in range(3):
            rel = f"{folder}/cwd{i}.ipynb"
            write_notebook(project / rel, [("code", code)])
            rels.append(rel)
    chdirs: list = []  # every os.chdir of the process while the notebooks run (there must be none)
    real_chdir = os.chdir
    monkeypatch.setattr(os, "chdir", lambda path: (chdirs.append(path), real_chdir(path))[1])
    assert main(["run", *rels, "--jobs", "2"]) == 0, capsys.readouterr().out
    assert chdirs == [] and os.getcwd() == str(project)  # the process never left the project
    client = mlflow_client()
    for run in all_runs(client):
        with open(client.download_artifacts(run.info.run_id, "nbops/records.json")) as f:
            cwd = json.load(f)["cwd"]
        assert cwd == str((project / run.data.tags["nbops.notebook"]).parent.resolve())


def test_ctrl_c_with_jobs_kills_the_kernels_and_ends_every_run(project, mlflow_client, tmp_path):
    """Ctrl-C during `run --jobs 2`: exit 130 within seconds (not when the notebooks would end),
    the running notebooks' runs KILLED, none left RUNNING, queued notebooks never started."""
    import os
    import signal
    import subprocess
    import sys
    import time

    marker = tmp_path / "started"
    marker.mkdir()
    paths = [str(write_notebook(project / "notebooks" / f"slow{i}.ipynb", [
        ("code", f"i = {i}", ["parameters"]),
        ("code", f"import pathlib, time\npathlib.Path({str(marker)!r}, str(i)).touch()\ntime.sleep(120)"),
    ])) for i in range(3)]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    proc = subprocess.Popen([sys.executable, "-m", "nbops", "run", *paths, "--jobs", "2", "--quiet"],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while len(os.listdir(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(os.listdir(marker)) == 2, "the notebooks never started"
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - interrupted
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted" in err
    assert took < 20, took  # the sleeping cells had ~2 minutes to go
    runs = all_runs(mlflow_client())
    assert sorted(r.info.status for r in runs) == ["KILLED", "KILLED"]  # the third never started


def test_a_tracked_batch_runs_at_most_jobs_kernels_at_once(project, mlflow_client, tmp_path, capsys):
    """A tracked batch has twice `--jobs` workers (one writes a finished run's record while the
    next kernel runs), but never more than `--jobs` kernels: each kernel notes when it lived."""
    log = tmp_path / "alive"
    log.mkdir()
    paths = [str(write_notebook(project / "notebooks" / f"k{i}.ipynb", [
        ("code", f"i = {i}", ["parameters"]),
        # from the kernel process's start to its last cell, both in seconds since boot (Linux)
        ("code", "import os, pathlib, time, nbops\ntime.sleep(0.5)\nnbops.record('i', i)\n"
                 "ticks = int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19])\n"
                 "start = ticks / os.sysconf('SC_CLK_TCK')\n"
                 "end = time.clock_gettime(time.CLOCK_BOOTTIME)\n"
                 f"pathlib.Path({str(log)!r}, str(i)).write_text(f'{{start}} {{end}}')"),
    ])) for i in range(6)]
    assert main(["run", *paths, "--jobs", "2"]) == 0, capsys.readouterr().out
    spans = [tuple(map(float, p.read_text().split())) for p in log.iterdir()]
    assert len(spans) == 6
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most <= 2, spans
    assert sorted(r.info.status for r in all_runs(mlflow_client())) == ["FINISHED"] * 6


REPORT_CONNECTION = ("import os, stat, nbops\n"
                     "from ipykernel.connect import get_connection_info\n"
                     "info = get_connection_info(unpack=True)\n"
                     "folder = os.path.dirname(info['ip'])\n"
                     "nbops.record('transport', info['transport'])\n"
                     "nbops.record('folder', folder)\n"
                     "ipc = info['transport'] == 'ipc'\n"
                     "nbops.record('mode', stat.S_IMODE(os.stat(folder).st_mode) if ipc else 0)\n"
                     "nbops.record('sockets', sorted(os.listdir(folder)) if ipc else [])")


def connection_records(client):
    seen = []
    for run in all_runs(client):
        with open(client.download_artifacts(run.info.run_id, "nbops/records.json")) as f:
            seen.append(json.load(f))
    return seen


def test_kernels_talk_over_private_unix_sockets_that_are_removed(project, mlflow_client, monkeypatch, tmp_path):
    """No TCP ports on localhost (picked, released, then bound by the kernel: a window in which
    another process can take one and the kernel never answers): Unix sockets in a folder only
    this user can enter, gone after the run."""
    import shutil
    import tempfile

    # a short folder: under pytest-xdist tmp_path (.../popen-gw1/...) is too long for a socket's
    # address, and nbops rightly falls back to /tmp (the next test checks that fallback)
    scratch = Path(tempfile.mkdtemp(prefix="nbops-ipc-", dir="/tmp"))
    before = tempfile.tempdir
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    try:
        paths = [str(write_notebook(project / "notebooks" / f"ipc{i}.ipynb", [("code", REPORT_CONNECTION)]))
                 for i in range(3)]
        assert main(["run", *paths, "--jobs", "2"]) == 0
        assert list(scratch.iterdir()) == []  # nothing left behind
    finally:
        tempfile.tempdir = before  # back before the folder goes (MLflow's downloads use it)
        shutil.rmtree(scratch, ignore_errors=True)
    seen = connection_records(mlflow_client())
    assert len(seen) == 3
    for records in seen:
        assert records["transport"] == "ipc"
        assert os.path.dirname(records["folder"]) == str(scratch) and records["mode"] == 0o700
        # shell, iopub, stdin, control, heartbeat; the files naming the nbops that owns them and
        # the sweep scope they belong to, and the kernel's TMPDIR (run/kernel_procs.py)
        assert sorted(records["sockets"]) == ["k-1", "k-2", "k-3", "k-4", "k-5", "owner", "scope", "tmp"]
    assert len({r["folder"] for r in seen}) == 3  # one folder per kernel


def test_a_temporary_folder_too_deep_for_a_socket_address_falls_back_to_tmp(project, mlflow_client, monkeypatch,
                                                                            tmp_path):
    import tempfile

    deep = tmp_path / ("d" * 60) / ("e" * 60)  # over the 104 bytes of a socket's address
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    path = write_notebook(project / "notebooks" / "deep.ipynb", [("code", REPORT_CONNECTION)])
    assert main(["run", str(path)]) == 0
    assert list(deep.iterdir()) == []  # the folder tried there first is gone
    [records] = connection_records(mlflow_client())
    assert records["transport"] == "ipc" and os.path.dirname(records["folder"]) == "/tmp"
    assert not os.path.exists(records["folder"])


def test_a_kernel_that_is_not_plainly_ipykernel_keeps_tcp(project, mlflow_client, monkeypatch, tmp_path):
    """IPC only for kernelspecs that start ipykernel: other kernels may not build IPC addresses."""
    import sys

    wrapper = tmp_path / "start-kernel.sh"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m ipykernel_launcher "$@"\n')
    wrapper.chmod(0o755)
    spec = tmp_path / "jupyter" / "kernels" / "wrapped-py"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps(
        {"argv": [str(wrapper), "-f", "{connection_file}"], "display_name": "wrapped", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    path = write_notebook(project / "notebooks" / "wrapped.ipynb", [("code", REPORT_CONNECTION)])
    assert main(["run", str(path), "--kernel", "wrapped-py"]) == 0
    [records] = connection_records(mlflow_client())
    assert records["transport"] == "tcp"
