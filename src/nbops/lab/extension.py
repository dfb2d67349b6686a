"""The lab's server extension: nbops's endpoints for the lab's frontend (lab/handlers.py: a new
notebook from a template as `nbops new` makes it, a notebook's parameters for the job form), the
MLflow UI's pages (lab/mlflow_ui.py) and the pre-save hook that names a notebook's model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from traitlets import List, Unicode
from traitlets.config import Configurable

PREFERRED = ("classification",)  # first in the new-notebook dialog, which preselects the first


class NbopsLab(Configurable):
    templates = List(Unicode(), config=True, help="folders of template notebooks, first wins")
    notebooks_dir = Unicode("notebooks", config=True)
    mlflow_socket = Unicode("", config=True, help="the MLflow UI's Unix socket ('' for none)")
    mlflow_log = Unicode("", config=True)
    experiment = Unicode("", config=True, help="the project's one experiment, if it sets one")


def as_new_notebook(path: Path) -> dict[str, Any]:
    """The template at PATH as `nbops new` writes it (the name is the user's: Rename in the lab)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb.setdefault("metadata", {}).setdefault("nbops", {})["template"] = path.stem
    return nb


def model_namer(dirs: list[str]):
    """A pre-save hook: a notebook made from a template takes its model's name from its file name
    (`nbops new NAME` does the same) as long as it still has the template's; Untitled* waits."""
    def name_model(model: dict[str, Any], path: str, **_: Any) -> None:
        if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
            return
        stem = Path(path).stem
        meta = model["content"].get("metadata", {}).get("nbops", {})
        spec, template = meta.get("model"), meta.get("template")
        if not isinstance(spec, dict) or not template or stem.startswith("Untitled"):
            return
        source = next((Path(d) / f"{template}.ipynb" for d in dirs
                       if (Path(d) / f"{template}.ipynb").is_file()), None)
        if source is None:
            return
        default = json.loads(source.read_text(encoding="utf-8")).get("metadata", {}) \
            .get("nbops", {}).get("model", {}).get("name")
        if spec.get("name") == default:
            spec["name"] = stem.replace("_", "-")

    return name_model


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbops.lab.extension"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from nbops.lab import handlers as nbops_handlers

    options = NbopsLab(parent=serverapp)
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", nbops_handlers.handlers(base))
    if options.mlflow_socket:
        from nbops.lab.mlflow_ui import handlers

        serverapp.web_app.add_handlers(".*$", handlers(base, options.mlflow_socket,
                                                       options.mlflow_log, options.experiment))
    serverapp.contents_manager.register_pre_save_hook(model_namer(options.templates))
    names = ", ".join(Path(t).stem for d in options.templates for t in sorted(Path(d).glob("*.ipynb"))) or "none"
    serverapp.log.info("nbops lab: templates %s; kernels log to %s", names,
                       serverapp.config.get("LabKernelManager", {}).get("nbops_env", {})
                       .get("MLFLOW_TRACKING_URI", "?"))
