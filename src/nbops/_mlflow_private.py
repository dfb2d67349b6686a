"""The fence around what nbops's kernel side uses of MLflow that MLflow does not promise.

Kernel side (imports nothing of the framework, so any layer may use it: `nbops._kernel`, and
core/reach.py for the database retries); it never imports mlflow at import time: the kernel's
callers hand in the module the notebook imported. Private or
unpromised, and why nbops uses it:

- `mlflow.tracking.context.registry._run_context_provider_registry` (private: a module-level
  registry MLflow fills from the `mlflow.run_context_provider` entry point) and its `register`
  method: the lab's interactive runs get their tags (`nbops.interactive`, the notebook, git)
  from a `RunContextProvider` registered in the kernel, so a run the user starts by hand, with
  any of MLflow's entry points, is tagged. An entry point would tag every run of every Python
  process that has nbops installed, not just the lab's kernels.
- `RunContextProvider` (public module, undocumented): subclassed with exactly `in_context` and
  `tags`, the two methods it declares.
- `mlflow.start_run` replaced on the `mlflow` module in the kernel (public function, but MLflow
  does not promise that its other entry points never reach it, nor its parameters): a bare
  `mlflow.start_run()` in a notebook gets the kernel's run back instead of "run already
  active". The wrapper relies on `run_id` being the first parameter and `nested` a keyword.

- `mlflow.store.db.utils.MAX_RETRY_COUNT` (a module global, no setting or variable sets it):
  MLflow's SQLAlchemy store retries opening a database that many times (10), sleeping ~100 s in
  all (`create_sqlalchemy_engine_with_retry`); core/reach.py lowers it once it has checked the
  login itself (`bound_db_retries`), so a database that is away fails within seconds.

- `_MLFLOW_SERVER_ARTIFACT_ROOT` (a private environment variable, the name MLflow's tracking
  utils read as `_SERVER_ARTIFACT_ROOT_ENV_VAR`): `mlflow server` sets it to its artifact root,
  and MLflow's client then creates a new store's Default experiment there instead of ./mlruns.
  run/newstore.py reads it (nothing is set) to know when a store it copies from its template
  would differ from the one MLflow makes, and lets MLflow create that store itself.

`missing(mlflow)` names whatever of this the installed MLflow lacks; tests/unit/
test_fence_mlflow.py asserts it names nothing, so a release that moves them fails that test
(`make test`, the version matrix) rather than a user's notebook.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

REGISTRY_MODULE = "mlflow.tracking.context.registry"
REGISTRY_NAME = "_run_context_provider_registry"
PROVIDER_MODULE = "mlflow.tracking.context.abstract_context"
PROVIDER_METHODS = frozenset({"in_context", "tags"})
DB_UTILS_MODULE = "mlflow.store.db.utils"
DB_RETRIES_NAME = "MAX_RETRY_COUNT"
TRACKING_UTILS_MODULE = "mlflow.tracking._tracking_service.utils"
SERVER_ARTIFACT_ROOT_NAME = "_SERVER_ARTIFACT_ROOT_ENV_VAR"
SERVER_ARTIFACT_ROOT_VAR = "_MLFLOW_SERVER_ARTIFACT_ROOT"


def bound_db_retries(count: int) -> None:
    """MLflow's SQLAlchemy store tries opening a database at most COUNT times from now on in
    this process (never raised above MLflow's own count)."""
    try:
        utils = importlib.import_module(DB_UTILS_MODULE)
    except ImportError:  # mlflow without its database extras: nothing retries
        return
    if getattr(utils, DB_RETRIES_NAME, 0) > count:
        setattr(utils, DB_RETRIES_NAME, count)


def register_run_tags(tags: Callable[[], dict[str, str]]) -> None:
    """Every run MLflow creates in this process from now on gets TAGS() (called at its start)."""
    base = importlib.import_module(PROVIDER_MODULE).RunContextProvider

    class NbopsRunContext(base):  # type: ignore[misc, valid-type]
        def in_context(self) -> bool:
            return True

        def tags(self) -> dict[str, str]:
            return tags()

    getattr(importlib.import_module(REGISTRY_MODULE), REGISTRY_NAME).register(NbopsRunContext)


def replace_start_run(mlflow: Any, ours: str) -> None:
    """`mlflow.start_run()` without a run id (or with OURS), not nested, while OURS is the
    active run, returns it instead of MLflow's "run already active" error."""
    original = mlflow.start_run

    def start_run(run_id=None, *args, nested=False, **kwargs):
        active = mlflow.active_run()
        if active is not None and not nested and active.info.run_id == ours and run_id in (None, ours):
            return active
        return original(run_id, *args, nested=nested, **kwargs)

    start_run.__doc__ = original.__doc__
    mlflow.start_run = start_run


def missing(mlflow: Any) -> list[str]:
    """What this module relies on that the installed MLflow (the imported module MLFLOW) lacks:
    [] when all is there."""
    gone: list[str] = []
    try:
        registry = getattr(importlib.import_module(REGISTRY_MODULE), REGISTRY_NAME)
        if not callable(getattr(registry, "register", None)):
            gone.append(f"{REGISTRY_MODULE}.{REGISTRY_NAME}.register")
    except (ImportError, AttributeError):
        gone.append(f"{REGISTRY_MODULE}.{REGISTRY_NAME}")
    try:
        provider = importlib.import_module(PROVIDER_MODULE).RunContextProvider
        declared = {name for name, value in vars(provider).items()
                    if callable(value) and not name.startswith("_")}
        if declared != PROVIDER_METHODS:
            gone.append(f"RunContextProvider's methods are {sorted(declared)}, "
                        f"not {sorted(PROVIDER_METHODS)}")
    except (ImportError, AttributeError):
        gone.append(f"{PROVIDER_MODULE}.RunContextProvider")
    params = list(inspect.signature(mlflow.start_run).parameters.values())
    if not params or params[0].name != "run_id":
        gone.append("mlflow.start_run's first parameter run_id")
    if not any(p.name == "nested" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in params):
        gone.append("mlflow.start_run's keyword nested")
    if not callable(getattr(mlflow, "active_run", None)):
        gone.append("mlflow.active_run")
    try:
        if not isinstance(getattr(importlib.import_module(DB_UTILS_MODULE), DB_RETRIES_NAME), int):
            gone.append(f"{DB_UTILS_MODULE}.{DB_RETRIES_NAME} as a number")
    except (ImportError, AttributeError):
        gone.append(f"{DB_UTILS_MODULE}.{DB_RETRIES_NAME}")
    try:
        if getattr(importlib.import_module(TRACKING_UTILS_MODULE), SERVER_ARTIFACT_ROOT_NAME) \
                != SERVER_ARTIFACT_ROOT_VAR:
            gone.append(f"{TRACKING_UTILS_MODULE}.{SERVER_ARTIFACT_ROOT_NAME} == {SERVER_ARTIFACT_ROOT_VAR!r}")
    except (ImportError, AttributeError):
        gone.append(f"{TRACKING_UTILS_MODULE}.{SERVER_ARTIFACT_ROOT_NAME}")
    return gone
