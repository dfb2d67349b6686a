"""The lab's MLflow launcher page (issue 23): the MLflow UI takes tens of seconds to answer after
the lab starts it, and a tab on jupyter-server-proxy stays blank white all that time. This page,
behind Jupyter's token like everything of the lab, says the UI is starting and reloads itself
until the UI answers on its Unix socket, then opens the training runs of the experiment the
project last logged to (MLflow 3 opens an experiment on its GenAI traces unless told).

MLflow's assistant panel: MLflow 3.17's UI opens its "MLflow Assistant" chat panel, a third of
the tab's width, on its first load from a local host name (the lab's is one), and remembers in
the browser's localStorage that it did (`AUTO_OPENED`, MLflow's own key, as its UI stores it:
`<key>_v<version>`, JSON). MLflow has no setting for it; this page, on the UI's origin (both are
the lab's), sets that key before it opens the UI, so the panel stays closed until the user opens
it from its button. The key is MLflow's private detail: tests/unit/test_fence_mlflow_ui.py fails
when the installed UI no longer has it, and the browser test checks the panel stays closed."""

from __future__ import annotations

import asyncio
import html
import json
import time
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

REFRESH_S = 2
AUTO_OPENED = "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1"  # see the module's docstring
_STARTED = time.monotonic()


async def ask(socket: str, method: str, path: str, body: dict | None = None,
              timeout: float = 5) -> tuple[int, Any]:
    """(status, JSON body or None) of one HTTP request to the UI on SOCKET; (0, None) when
    nothing answers yet."""
    data = b"" if body is None else json.dumps(body).encode()
    request = (f"{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(data)}\r\n\r\n").encode() + data
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(socket), timeout)
        try:
            writer.write(request)
            raw = await asyncio.wait_for(reader.read(), timeout)
        finally:
            writer.close()
    except (OSError, asyncio.TimeoutError):
        return 0, None
    head, _, payload = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
        return status, json.loads(payload) if payload.strip().startswith(b"{") else None
    except (IndexError, ValueError):
        return 0, None


async def runs_view(socket: str, experiment: str) -> str | None:
    """The UI's route to the training runs of EXPERIMENT (the project's setting), else of the
    experiment with the latest change; the experiments list when there is none; None while
    the UI does not answer."""
    status, _ = await ask(socket, "GET", "/health")
    if status != 200:
        return None
    query: dict[str, Any] = {"max_results": 1, "order_by": ["last_update_time DESC"]}
    if experiment:
        query["filter"] = f"name = '{experiment}'"
    status, found = await ask(socket, "POST", "/ajax-api/2.0/mlflow/experiments/search", query)
    experiments = (found or {}).get("experiments", []) if status == 200 else []
    if not experiments:
        return "#/experiments?workflowType=machine_learning"
    return f"#/experiments/{experiments[0]['experiment_id']}/runs?workflowType=machine_learning"


def starting_page(seconds: float, log: str) -> str:
    tail = ""
    if seconds > 60 and log and Path(log).is_file():  # slow: what the UI said
        lines = Path(log).read_text(encoding="utf-8", errors="replace").splitlines()[-8:]
        tail = "<pre>" + html.escape("\n".join(lines)) + "</pre>"
    return (f'<!doctype html><html><head><meta http-equiv="refresh" content="{REFRESH_S}">'
            "<title>MLflow: starting</title></head>"
            '<body style="font-family: sans-serif; margin: 2em; color: #333">'
            f"<h2>Starting the MLflow UI&hellip;</h2><p>The lab started it {seconds:.0f} s ago; "
            "this page opens it as soon as it answers (it usually takes 15 to 90 seconds).</p>"
            f"{tail}</body></html>")


def opening_page(target: str) -> str:
    """Marks MLflow's assistant panel as already shown once (the user's own choice kept), then
    opens TARGET in place of this page."""
    # JSON inside <script>: no "<" may close the element early
    key, url = (json.dumps(text).replace("<", "\\u003c") for text in (AUTO_OPENED, target))
    return ("<!doctype html><html><head><title>MLflow</title><script>"
            f"try {{ if (localStorage.getItem({key}) === null) localStorage.setItem({key}, 'true'); }}"
            f" catch (e) {{}}\nlocation.replace({url});</script></head>"
            f'<body><a href="{html.escape(target)}">MLflow</a></body></html>')


class MlflowPage(JupyterHandler):
    def initialize(self, socket: str, log: str, experiment: str) -> None:
        self.socket, self.log_file, self.experiment = socket, log, experiment

    @web.authenticated
    async def get(self) -> None:
        route = await runs_view(self.socket, self.experiment)
        if route is None:
            self.set_header("Cache-Control", "no-store")
            self.finish(starting_page(time.monotonic() - _STARTED, self.log_file))
            return
        self.set_header("Cache-Control", "no-store")
        self.finish(opening_page(url_path_join(self.base_url, "mlflow/") + route))


def handlers(base: str, socket: str, log: str, experiment: str) -> list[tuple[str, Any, dict]]:
    from nbops.lab.config import UI_PAGE

    return [(url_path_join(base, UI_PAGE), MlflowPage,
             {"socket": socket, "log": log, "experiment": experiment})]
