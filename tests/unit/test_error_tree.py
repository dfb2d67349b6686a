"""The one exception tree (core/errors.py): every exception class nbops defines is an NbopsError
or a listed signal that is not an error; and MLflow's exceptions are caught in one place only
(core/errors.py: map_mlflow_errors, store_error_kind, store_errors), found by reading the source."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

from nbops.core import errors

SRC = Path(__file__).resolve().parents[2] / "src" / "nbops"

# exceptions nbops raises that are not errors to show a user: each one's reason
NOT_ERRORS = {
    "Terminated": "SIGTERM, handled as Ctrl-C (a KeyboardInterrupt): exit 143",
    "NotDelivered": "run/stage_data.py: an outcome, the run kept in the spool (exit 4)",
    "Unavailable": "core/mlflow_db.py: a fast path cannot answer, MLflow's client is asked instead",
    "_Delegate": "core/sqlite_writer.py: a call handed to MLflow's client",
    "OutputWriteError": "run/saving.py: an OSError, so the executed notebook's write is said as one",
    "SmokeFailure": "testing/smoke.py: a failing notebook test, pytest's outcome",
    "BrokenNotebook": "testing/plugin.py: a notebook pytest cannot collect, pytest's outcome",
}

# the other helper's storage seam (issue 24): its handlers are converted there
# TODO(issue 24, storage seam): drop each file once its own MLflow handlers use core/errors.py's map
OTHER_SEAM: set[str] = set()

BROAD = {"Exception", "BaseException"}
MLFLOW_TOUCH = {"mlflow", "client", "_client", "MlflowClient", "store"}
JUSTIFIED = "not mapped:"  # at a broad handler around MLflow calls: why it may catch everything


def _modules() -> list[tuple[str, ast.Module, list[str]]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        out.append((path.relative_to(SRC).as_posix(), ast.parse(text), text.splitlines()))
    return out


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _dotted(node.func) + "()"
    return ""


def _exception_classes() -> dict[str, tuple[str, list[str]]]:
    """name -> (module, base names) of every class in src/nbops that derives from an exception."""
    classes = {node.name: (rel, [_dotted(b).rsplit(".", 1)[-1] for b in node.bases])
               for rel, tree, _ in _modules() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}

    def is_exception(name: str, seen: frozenset = frozenset()) -> bool:
        builtin = getattr(builtins, name, None)
        if isinstance(builtin, type) and issubclass(builtin, BaseException):
            return True
        return name in classes and name not in seen and any(
            is_exception(b, seen | {name}) for b in classes[name][1])

    return {name: info for name, info in classes.items() if any(is_exception(b) for b in info[1])}


def test_every_exception_is_an_nbops_error_or_a_listed_signal():
    found = _exception_classes()
    assert "TrackingError" in found and "PayloadError" in found and "BadEntry" in found

    def reaches_root(name: str) -> bool:
        return name == "NbopsError" or any(reaches_root(b) for b in found.get(name, ("", []))[1])

    outside = {name: rel for name, (rel, _) in found.items() if not reaches_root(name)}
    assert outside.keys() - {"NbopsError"} == NOT_ERRORS.keys(), outside


def test_the_tree_is_drawn_and_its_classes_are_what_the_drawing_says():
    doc = errors.__doc__ or ""
    for name, (_, _) in _exception_classes().items():
        if name not in NOT_ERRORS:
            assert name in doc, f"{name} is not in core/errors.py's drawing of the tree"
    # an input error is a ValueError too: callers that catch ValueError keep working
    from nbops.lifecycle.models import InputError
    from nbops.lifecycle.serve.payload import PayloadError

    assert InputError is errors.InputError
    for cls in (errors.InputError, PayloadError, errors.StoreInputError):
        assert issubclass(cls, errors.NbopsError) and issubclass(cls, ValueError)
    for cls in (errors.StoreUnreachable, errors.StoreAuthError, errors.NotFound, errors.AlreadyExists,
                errors.StoreInputError):
        assert issubclass(cls, errors.StoreError) and issubclass(cls, errors.TrackingError)
    # what nbops retries or spools: the store's failures, not nbops's own checks of it
    assert isinstance(errors.StoreUnreachable("down"), errors.store_errors())
    assert not isinstance(errors.TrackingError("the store is read-only"), errors.store_errors())


def _handler_types(handler: ast.ExceptHandler) -> list[str]:
    if handler.type is None:
        return ["<bare>"]
    nodes = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return [_dotted(n) for n in nodes]


def _touches_mlflow(body: list[ast.stmt]) -> bool:
    """Whether a try block calls MLflow directly: a name or attribute `mlflow`, `client`..."""
    for stmt in body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and node.id in MLFLOW_TOUCH:
                return True
            if isinstance(node, ast.Attribute) and node.attr in MLFLOW_TOUCH:
                return True
    return False


def _reraises(handler: ast.ExceptHandler) -> bool:
    """A handler that cleans up and raises the same exception again catches nothing."""
    last = handler.body[-1]
    return isinstance(last, ast.Raise) and last.exc is None


def _violations() -> list[str]:
    out = []
    for rel, tree, lines in _modules():
        if rel == "core/errors.py":
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try):
                continue
            for handler in node.handlers:
                types = _handler_types(handler)
                where = f"{rel}:{handler.lineno}"
                names = [t.rsplit(".", 1)[-1] for t in types]
                if any(n in ("MlflowException", "RestException") or t.startswith("mlflow.")
                       for t, n in zip(types, names, strict=True)):
                    if rel not in OTHER_SEAM:
                        out.append(f"{where}: catches {types}: use core/errors.py's map_mlflow_errors")
                    continue
                broad = any(n in BROAD or n == "<bare>" for n in names)
                if broad and _touches_mlflow(node.body) and not _reraises(handler):
                    if JUSTIFIED not in lines[handler.lineno - 1] and rel not in OTHER_SEAM:
                        out.append(f"{where}: `except {'/'.join(types)}` around MLflow calls: map them "
                                   f"(core/errors.py), or say why at the site ('# ... {JUSTIFIED} why')")
    return out


def test_mlflow_exceptions_are_caught_in_one_place():
    assert _violations() == []


@pytest.mark.parametrize("rel", sorted(OTHER_SEAM))
def test_the_seam_allowlist_holds_only_files_that_still_need_it(rel):
    """An allowlisted file with no handler of MLflow's left is taken off the list."""
    text = (SRC / rel).read_text(encoding="utf-8")
    assert "MlflowException" in text or "except Exception" in text, f"{rel}: drop it from OTHER_SEAM"
