"""rfc3987-syntax's parser built when it is first used, not when it is imported.

A workaround for a dependency's import cost, kept in this one place. jsonschema imports
rfc3987-syntax, when it is installed (jupyter-events asks for `jsonschema[format-nongpl]`), for its
"iri" format checks; rfc3987-syntax 1.1 builds a Lark Earley parser of RFC 3987's grammar as it is
imported: 1.4 s of CPU in every process that imports nbformat (papermill, nbdime), for a format
nbformat's schema never uses (`import papermill` 1.6 s -> 0.5 s, the git clean filter 2.0 s ->
0.3 s a notebook). As `import nbops` installs it, it holds in every process nbops starts: the CLI,
the clean filter and merge driver git runs, papermill's workers of `nbops run --jobs`. (It replaces
hiding the module, which the CLI and the merge driver did: that took jsonschema's IRI checks away
from the whole process, and the clean filter had been left out.)

`install()` (called by `import nbops`) puts a finder first on `sys.meta_path` that answers only for
`rfc3987_syntax`: the package it gives has the real one's folder and an `is_valid_syntax` that
imports the real `rfc3987_syntax.syntax_helpers` on its first call; any other name read from it
does the same. A validation that checks an IRI gets rfc3987-syntax's own answer. Nothing changes
where rfc3987-syntax is not installed (the finder answers None: jsonschema's ImportError as
before) or was imported before nbops.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys

NAME = "rfc3987_syntax"
_HELPERS = f"{NAME}.syntax_helpers"  # the real module, which builds the parser


def is_valid_syntax(term: str, value: str) -> bool:
    """rfc3987_syntax.is_valid_syntax, its module imported on the first call."""
    return bool(importlib.import_module(_HELPERS).is_valid_syntax(term, value))


def _getattr(attr: str) -> object:
    """Any other name of the package (its `parse`, its parser): from the real module."""
    if attr.startswith("__"):
        raise AttributeError(attr)
    return getattr(importlib.import_module(_HELPERS), attr)


# Plain classes: the import system asks only for these methods, and importlib.abc would pull
# importlib.resources into `import nbops` (35 ms of every kernel's and command's start)
class _Loader:
    def create_module(self, spec):  # the default module object
        return None

    def exec_module(self, module) -> None:
        module.is_valid_syntax = is_valid_syntax
        module.__getattr__ = _getattr


class _Finder:
    def find_spec(self, fullname, path=None, target=None):
        if fullname != NAME:
            return None
        real = importlib.machinery.PathFinder.find_spec(fullname)
        if real is None or not real.submodule_search_locations:
            return None  # not installed (or not the package we know): the import goes on as usual
        spec = importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)
        spec.submodule_search_locations = list(real.submodule_search_locations)  # its real modules
        return spec


def install() -> None:
    """The finder, once, unless rfc3987_syntax is already imported."""
    if NAME in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
