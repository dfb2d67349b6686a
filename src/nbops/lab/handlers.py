"""The lab's own endpoints, for its frontend (lab/labextension/): a notebook's parameters, which
prefill the job form, and a new notebook made from a template as `nbops new` makes it.

Both are jupyter_server API handlers: the lab's token or cookie and its XSRF check apply, as to
every other endpoint of the lab; the contents permission is asked as the contents API asks it.
An nbops error is a 400 whose JSON `message` is nbops's one line (with its hint)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

AUTH_RESOURCE = "contents"  # what a notebook's parameters and a new notebook read and write


def _as_text(param: Any) -> str | None:
    """A parameter's default as the job form's text, which `nbops run -p` reads back to the same
    value; None for a default that is not a literal (an expression)."""
    from nbops.core.errors import NbopsError
    from nbops.notebook.params import coerce

    if param.type == "expr":
        return None
    candidates = [param.default] if isinstance(param.default, str) else []
    candidates += [json.dumps(param.default), repr(param.default)]
    for text in candidates:
        try:
            if coerce(param, text, "") == param.default:
                return text
        except NbopsError:
            continue
    return None


def parameters(root: Path, api_path: str) -> list[dict[str, Any]]:
    """The parameters of the notebook at API_PATH (relative to ROOT): name, the default as text,
    the declared choices (as text) and the line's comment."""
    from nbops.core.errors import NotebookError
    from nbops.notebook.document import load

    path = (root / api_path).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise NotebookError(f"{api_path}: no such notebook in the project")
    found = []
    for p in load(path).parameters:
        text = _as_text(p)
        if text is None:
            continue
        choices = [c if isinstance(c, str) else repr(c) for c in p.choices] if p.choices else None
        found.append({"name": p.name, "value": text, "choices": choices, "help": p.help})
    return found


def templates(root: Path) -> list[dict[str, Any]]:
    """The project's notebook templates by name, first folder first (as `nbops new` finds them),
    the general one first: the dialog preselects it. A broken one is listed: `new` says why."""
    from nbops.ci.scaffold import template_dirs
    from nbops.core.config import load_settings
    from nbops.lab.extension import PREFERRED

    names = {p.stem for d in template_dirs(load_settings(root)) for p in d.glob("*.ipynb")}
    ordered = sorted(names, key=lambda n: (n not in PREFERRED, PREFERRED.index(n) if n in PREFERRED else 0, n))
    return [{"name": n} for n in ordered]


def new(root: Path, template: str, name: str) -> str:
    """notebooks/NAME.ipynb from TEMPLATE (`nbops new TEMPLATE NAME`): its API path."""
    from nbops.ci.scaffold import new_notebook
    from nbops.core.config import load_settings
    from nbops.core.errors import NotebookError

    known = [t["name"] for t in templates(root)]
    if template not in known:  # a name of the list, never a path (`nbops new` takes one)
        raise NotebookError(f"no template named {template!r}", hint=f"templates: {', '.join(known) or 'none'}")
    dest = new_notebook(load_settings(root), template, name, {})
    return dest.resolve().relative_to(root.resolve()).as_posix()


class _Handler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def root(self) -> Path:
        return Path(self.settings["server_root_dir"]).expanduser()

    def answer(self, call: Any) -> None:
        from nbops.core.errors import NbopsError

        try:
            result = call()
        except NbopsError as exc:
            line = str(exc).splitlines()[0] + (f" ({exc.hint})" if exc.hint else "")
            raise web.HTTPError(400, reason=line[:400], log_message=line) from None
        self.finish(json.dumps(result))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """JSON {"message": ...}, the reason nbops gave (jupyter_server's own says "Bad Request")."""
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": self._reason}))


class ParametersHandler(_Handler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        path = self.get_query_argument("path", "")
        self.answer(lambda: {"parameters": parameters(self.root, path)})


class TemplatesHandler(_Handler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        self.answer(lambda: {"templates": templates(self.root)})


class NewHandler(_Handler):
    @web.authenticated
    @authorized
    def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
            template, name = str(body["template"]), str(body["name"])
        except (ValueError, KeyError, TypeError):
            raise web.HTTPError(400, reason="expected JSON {\"template\": ..., \"name\": ...}") from None
        name = name.removesuffix(".ipynb")
        self.answer(lambda: {"path": new(self.root, template, name)})


def handlers(base: str) -> list[tuple[str, type, dict[str, Any]]]:
    from jupyter_server.utils import url_path_join

    return [(url_path_join(base, "nbops", what), handler, {}) for what, handler in
            (("parameters", ParametersHandler), ("templates", TemplatesHandler), ("new", NewHandler))]


def labextensions_path() -> str:
    """The folder of the lab's frontend extension (a prebuilt one: `extra_labextensions_path`)."""
    return os.fspath(Path(__file__).with_name("labextensions"))
