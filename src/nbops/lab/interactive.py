"""What an interactive run gets from its project, asked by a kernel (nbops/_kernel.py) in a child
process, wherever the kernel runs: `nbops lab`, plain `jupyter lab`, VS Code, `jupyter nbconvert
--execute`. The kernel side imports nothing of the framework (layers: ARCHITECTURE.md), so it
runs `python -m nbops.lab.interactive` once, when the notebook imports mlflow, and reads one JSON
answer: the store as `nbops` resolves it (core/config.py; `nbops lab` gives its kernels the same,
lab/config.py), the notebook's experiment, and its parameters cell's values as params with the
run name `nbops run` would give them (run/render.py).

Input on stdin: {"root": project root, "notebook": absolute path or "", "values": {name: value}
(the kernel's current values, JSON-safe)}. Output: {"error": message} or the answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from nbops.core.config import load_settings
from nbops.core.errors import NbopsError
from nbops.core.secrets import masked, secret_names
from nbops.lab.config import artifact_location

MAX_PARAM = 6000  # MLflow's limit on a param value's length (run/run_metadata.py's too)
UNNAMED = "interactive"  # the experiment of a kernel whose notebook nobody can name


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 3] + "..."


def _plain(value: Any) -> Any:
    """A value as it reads back from JSON (a tuple default compares equal to the kernel's list)."""
    return json.loads(json.dumps(value, default=str))


def _parameters(notebook: Path, where: str) -> tuple[list[Any], str]:
    """The notebook's parameters (document.py's reader) and the stem, or ([], '') unreadable."""
    from nbops.notebook.document import load

    try:
        nb = load(notebook)
    except (NbopsError, OSError) as exc:
        print(f"nbops: {where}: parameters not logged: {exc}", file=sys.stderr)
        return [], notebook.stem
    return list(nb.parameters), nb.stem


def answer(root: Path, notebook: str, values: dict[str, Any]) -> dict[str, Any]:
    from nbops.run.render import run_name

    settings = load_settings(root)
    uri = settings.resolved_tracking_uri
    out: dict[str, Any] = {"tracking_uri": uri, "registry_uri": uri,
                           "artifact_location": artifact_location(settings),
                           "experiment": settings.experiment or UNNAMED, "notebook": "",
                           "run_name": "", "params": {}}
    if not notebook:
        return out
    path = Path(notebook).resolve()
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    params, stem = _parameters(path, rel)
    defaults = {p.name: _plain(p.default) for p in params}
    used = {p.name: values[p.name] if p.name in values else defaults[p.name] for p in params}
    secrets = secret_names(used, settings.secret_param_names)
    out.update(experiment=settings.experiment or rel.removesuffix(".ipynb"), notebook=rel,
               run_name=run_name(stem, used, defaults, secrets),
               params={k: _param(v) for k, v in masked(used, secrets).items()})
    return out


def main() -> int:
    try:
        request = json.load(sys.stdin)
        reply = answer(Path(request["root"]).resolve(), request.get("notebook") or "",
                       request.get("values") or {})
    except NbopsError as exc:
        reply = {"error": str(exc)}
    json.dump(reply, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
