"""The Jupyter server configuration of `nbops lab`, written to `.nbops/lab/` and handed to
JupyterLab, which runs as the nbops process's child (lab/processes.py ends all it started)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import ConfigError
from nbops.core.files import write_text_atomic

LAB_DIR = ".nbops/lab"
MLFLOW_SOCKET = "mlflow.sock"
MLFLOW_LOG = "mlflow-ui.log"
UI_PAGE = "nbops/mlflow"  # the launcher entry's page, under Jupyter's base URL


def artifact_location(settings: Settings) -> str:
    """Where a new experiment keeps its artifacts: beside an sqlite store, as `nbops run` does
    (never MLflow's ./mlruns in a kernel's working folder); '' lets the server decide."""
    uri = settings.resolved_tracking_uri
    if not uri.startswith("sqlite:///"):
        return ""
    artifacts = Path(settings.artifact_root)
    db_dir = Path(uri[len("sqlite:///"):]).parent
    return (artifacts if artifacts.is_absolute() else db_dir / artifacts).resolve().as_uri()


def kernel_env(settings: Settings) -> dict[str, str]:
    """What every kernel of the lab gets (see nbops/_kernel.py)."""
    uri = settings.resolved_tracking_uri
    env = {"NBOPS_PROJECT_ROOT": str(settings.root.resolve()), "MLFLOW_TRACKING_URI": uri,
           "MLFLOW_REGISTRY_URI": uri}
    if artifact_location(settings):
        env["NBOPS_ARTIFACT_LOCATION"] = artifact_location(settings)
    return env


def mlflow_command(settings: Settings, socket: str | None = None) -> list[str]:
    """The MLflow UI on the project's store, started by the lab with JupyterLab (it takes tens of
    seconds to answer), on the Unix socket SOCKET (in a folder only this user can enter; a
    placeholder when None) and reached through jupyter-server-proxy: no TCP port, so only a request
    through Jupyter's proxy, which requires Jupyter's token,
    reaches it (issue 22: on its own 127.0.0.1 port any local user could read and write the
    store). uvicorn takes `--uds` over `--host`/`--port`."""
    uri = settings.resolved_tracking_uri
    if uri.startswith(("http://", "https://", "databricks")):
        return []  # a tracking server has its own UI
    uds = shlex.quote(socket) if socket else "SOCKET"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--host", "127.0.0.1", "--workers", "1", "--uvicorn-opts", f"--uds {uds}"]
    if artifact_location(settings):
        cmd += ["--default-artifact-root", artifact_location(settings)]
    return cmd


# MLflow's job runner (GenAI scorers) would be one more process, told the server is on TCP
MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def server_config(settings: Settings, port: int | None, open_browser: bool,
                  mlflow_socket: str | None = None) -> dict[str, Any]:
    from nbops.lab.handlers import labextensions_path

    root = settings.root.resolve()
    lab = root / LAB_DIR
    notebooks = settings.path(settings.notebooks_dir)
    config: dict[str, Any] = {
        "ServerApp": {
            "ip": "127.0.0.1",
            "root_dir": str(root),
            "open_browser": open_browser,
            # containers and CI run as root; the lab still listens on 127.0.0.1 with a token
            "allow_root": hasattr(os, "geteuid") and os.geteuid() == 0,
            "kernel_manager_class": "nbops.lab.kernels.LabKernelManager",
            # jupyterlab-templates, where a user installed it: nbops's dialog replaces it
            "jpserver_extensions": {"nbops.lab.extension": True, "jupyterlab_templates": False},
        },
        # the file browser starts in notebooks/: a notebook made from a template lands there
        "FileContentsManager": {"preferred_dir": _api_path(settings, notebooks)},
        # the open tabs and layout are the project's, not shared by every lab on the machine
        # nbops's frontend (lab/labextensions/: a new notebook from a template; the job form's
        # parameters), for this lab only: a plain `jupyter lab` of the same environment has none
        "LabApp": {"workspaces_dir": str(lab / "workspaces"),
                   "extra_labextensions_path": [labextensions_path()]},
        "LabKernelManager": {"nbops_env": kernel_env(settings)},
        "NbopsLab": {"templates": [str(d) for d in _template_dirs(settings)],
                     "notebooks_dir": settings.notebooks_dir},
        "SchedulerApp": {
            "db_url": f"sqlite:///{lab / 'scheduler.sqlite'}",
            "scheduler_class": "nbops.lab.jobs.NbopsScheduler",
            "environment_manager_class": "nbops.lab.jobs.ProjectEnvironment",
        },
        "NbopsScheduler": {"staging_path": str(lab / "jobs"),
                           "execution_manager_class": "nbops.lab.jobs.NbopsExecutionManager"},
    }
    if open_browser:  # a browser it starts must not end with the lab (lab/processes.py)
        from nbops.lab.processes import BROWSER

        config["ServerApp"]["browser"] = BROWSER
    if port:
        config["ServerApp"]["port"] = port
        config["ServerApp"]["port_retries"] = 0
    if mlflow_command(settings) and mlflow_socket:
        # the lab starts the UI itself at once (launch); the launcher entry opens our page,
        # which says it is starting until it answers, then opens the runs (lab/mlflow_ui.py)
        entry = {"title": "MLflow", "enabled": True, "category": "Other", "path_info": UI_PAGE}
        config["ServerProxy"] = {"servers": {"mlflow": {
            "unix_socket": mlflow_socket, "timeout": 120, "new_browser_tab": False,
            "launcher_entry": entry}}}
        config["NbopsLab"].update(mlflow_socket=mlflow_socket, mlflow_log=str(lab / MLFLOW_LOG),
                                  experiment=settings.experiment)
    return config


def _api_path(settings: Settings, folder: Path) -> str:
    root = settings.root.resolve()
    folder = folder.resolve()
    return folder.relative_to(root).as_posix() if folder.is_dir() and folder.is_relative_to(root) else ""


def _template_dirs(settings: Settings) -> list[Path]:
    from nbops.ci.scaffold import template_dirs

    return template_dirs(settings)


def write_config(settings: Settings, port: int | None, open_browser: bool,
                 mlflow_socket: str | None = None) -> Path:
    path = settings.root.resolve() / LAB_DIR / "jupyter_server_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    config = server_config(settings, port, open_browser, mlflow_socket)
    write_text_atomic(path, json.dumps(config, indent=1))
    return path


def check_port(port: int) -> None:
    """A port taken by another program is a one-line error before anything starts."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Jupyter binds it
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"port {port} on 127.0.0.1 is not free: {exc.strerror}",
                              hint="pick another with --port, or leave it out") from None


def create_store(settings: Settings) -> None:
    """A new sqlite store is made here, once, in the project root: a kernel and the MLflow UI
    creating its tables at the same moment fail (and MLflow's Default experiment would keep the
    ./mlruns of whichever working folder came first). In a child process: the lab's process,
    JupyterLab's parent for hours, stays small (MLflow's client is about 230 MB)."""
    import subprocess

    from nbops.core.errors import TrackingError
    from nbops.core.store import mask_uri

    uri = settings.resolved_tracking_uri
    if not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):]).exists():
        return
    print(f"nbops lab: creating the MLflow store {mask_uri(uri)}", file=sys.stderr)
    done = subprocess.run([sys.executable, "-m", "nbops.lab.config", uri], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise TrackingError(mask_uri(lines[-1]) if lines else
                            f"cannot create the MLflow store {mask_uri(uri)} (exit {done.returncode})")


def _make_store(uri: str) -> int:
    from mlflow.tracking import MlflowClient

    from nbops.core.errors import NbopsError, first_line, map_mlflow_errors, store_errors
    from nbops.core.store import mask_uri
    from nbops.run.newstore import create_sqlite

    what = f"cannot create the MLflow store {mask_uri(uri)}"
    try:
        with map_mlflow_errors(what=what, store=uri):
            create_sqlite(uri)  # a local store whole or not at all
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)  # a server's database
    except NbopsError as exc:
        print(exc, file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - not mapped: the top of a child process (as cli/main.py): quoted by create_store, after its traceback
        import traceback

        traceback.print_exc()
        print(f"{what}: {first_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, store_errors()) else 3
    return 0


def launch(settings: Settings, port: int | None, open_browser: bool) -> int:
    """JupyterLab on the project, as this process's child, until it exits or this process gets
    SIGTERM, SIGINT (Ctrl-C) or SIGHUP; everything it started ends with it (lab/processes.py)."""
    import importlib.util

    from nbops.lab.processes import private_folder, supervise

    missing = [m for m in ("jupyterlab", "jupyter_server_proxy", "jupyter_scheduler")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"nbops lab needs {', '.join(missing)}, which is not installed",
                          hint="pip install nbops (or `make install` in a checkout)")
    if port:
        check_port(port)
    os.chdir(settings.root)
    create_store(settings)
    folder = private_folder(MLFLOW_SOCKET) if mlflow_command(settings) else None
    try:
        path = write_config(settings, port, open_browser,
                            str(folder / MLFLOW_SOCKET) if folder else None)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.config_file={path}"]
    background = []
    if folder is not None:
        background.append((mlflow_command(settings, str(folder / MLFLOW_SOCKET)), MLFLOW_ENV,
                           path.parent / MLFLOW_LOG))
    sys.stdout.flush()
    sys.stderr.flush()
    return supervise(argv, folder, background)


if __name__ == "__main__":  # create_store's child process
    sys.exit(_make_store(sys.argv[1]))
