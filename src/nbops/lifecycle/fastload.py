"""A registered scikit-learn model loaded without `import mlflow` (~2.3 s of a `predict` or a
`serve` start-up), where its artifacts are on local disk.

It does what `mlflow.sklearn.load_model` does for such a model, by MLflow's own rules: the
version's logged model (`models:/<model id>`) found through the registry's fast reader, its
MLmodel file's `sklearn` flavor, the serialization format it names (skops with the model's
trusted types, pickle, cloudpickle), MLFLOW_ALLOW_PICKLE_DESERIALIZATION honoured. Anything
else (another flavor, code paths, artifacts behind a server or in S3, a signature that is not
plain named columns) returns None and `models.load` asks MLflow.

skops computes its lists of trusted types when `skops.io` is first imported: every scikit-learn
module imported to list its estimators (`all_estimators()`), numpy's and scipy's ufuncs and
dtypes, ~0.5 s of every `predict` or `serve` start-up. The lists depend only on skops's module
and the installed libraries, so they are kept in a cache file keyed by those (skops's source,
the versions of skops, scikit-learn, scipy and numpy, the interpreter): a later process in the
same environment gives skops the same lists without recomputing them. Anything that does not
match computes them as skops does.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from nbops.core.registry_read import Unavailable, fast_reader
from nbops.lifecycle.registry import VersionInfo

# the signature types `models.Column` takes as they are (MLflow's DataType names)
_PLAIN_TYPES = {"double", "float", "long", "integer", "boolean", "string", "binary", "datetime"}
_FORMATS = ("skops", "pickle", "cloudpickle")


def _local_path(uri: str) -> Path | None:
    parts = urlsplit(uri)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return Path(unquote(parts.path))
    if not parts.scheme and uri.startswith("/"):
        return Path(uri)
    return None


def model_dir(version: VersionInfo) -> Path | None:
    """The local folder holding VERSION's MLmodel file, or None."""
    source = version.source
    if source.startswith("models:/m-") and "/" not in source[len("models:/"):]:
        reader = fast_reader(version.store_uri)
        if reader is None:
            return None
        try:
            location = reader.artifact_location(source[len("models:/"):])
        except Unavailable:
            return None
        folder = _local_path(location) if location else None
    else:
        folder = _local_path(source)
    return folder if folder is not None and (folder / "MLmodel").is_file() else None


def _allowed() -> bool:
    """MLflow's MLFLOW_ALLOW_PICKLE_DESERIALIZATION (true unless set otherwise): when it is off,
    MLflow refuses with its own message."""
    value = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    return value is None or value.strip().lower() in ("true", "1")


def columns_of(meta: dict) -> tuple | None:
    """The signature's named columns as `models.Column`s; () with no signature; None for a
    signature this loader leaves to MLflow (tensors, nested types, unnamed columns)."""
    import json

    from nbops.lifecycle.models import Column

    signature = meta.get("signature") or {}
    if not signature.get("inputs"):
        return ()
    try:
        inputs = json.loads(signature["inputs"])
    except (TypeError, ValueError):
        return None
    cols = []
    for spec in inputs if isinstance(inputs, list) else ():
        kind, name = spec.get("type"), spec.get("name")
        if kind not in _PLAIN_TYPES or not isinstance(name, str) or not name:
            return None
        cols.append(Column(name, kind, required=bool(spec.get("required", True))))
    return tuple(cols) or None


def load_sklearn(version: VersionInfo) -> tuple[Any, tuple] | None:
    """(the scikit-learn model, its input columns) loaded as MLflow would, or None."""
    folder = model_dir(version)
    if folder is None or not _allowed():
        return None
    import yaml

    try:
        meta = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    conf = (meta.get("flavors") or {}).get("sklearn")
    if not isinstance(conf, dict) or conf.get("code") or not conf.get("pickled_model"):
        return None
    fmt = conf.get("serialization_format", "pickle")
    columns = columns_of(meta)
    path = folder / conf["pickled_model"]
    if fmt not in _FORMATS or columns is None or not path.is_file():
        return None
    if fmt == "skops":
        skops_io = import_skops_io()
        return skops_io.load(path, trusted=conf.get("skops_trusted_types")), columns
    with path.open("rb") as f:
        if fmt == "pickle":
            import pickle

            return pickle.load(f), columns  # noqa: S301 - MLflow's own rule, allowed above
        import cloudpickle

        return cloudpickle.load(f), columns


# -- skops's trusted types, kept between processes -----------------------------------------------
_TRUSTED = "skops.io._trusted_types"
_CACHE_VERSION = 1


def cache_dir() -> Path:
    """nbops's cache folder: $XDG_CACHE_HOME/nbops, or ~/.cache/nbops."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nbops"


def trusted_types_key() -> str | None:
    """What skops's trusted-type lists are computed from, as one string; None when skops is not
    installed as a package this can read."""
    import hashlib
    from importlib import import_module, util

    try:
        spec = util.find_spec("skops")  # the top package only: skops.io is not imported
        if spec is None or not spec.submodule_search_locations:
            return None
        source = Path(next(iter(spec.submodule_search_locations))) / "io" / "_trusted_types.py"
        parts = {"cache": _CACHE_VERSION, "python": sys.version, "prefix": sys.prefix,
                 "source": hashlib.sha256(source.read_bytes()).hexdigest(),
                 "torch": "torch" in sys.modules,  # models.load hides it unless already there
                 # imported by skops.io in any case
                 **{name: str(import_module(name).__version__)
                    for name in ("skops", "sklearn", "scipy", "numpy")}}
    except (OSError, ValueError, ImportError, AttributeError):
        return None
    return json.dumps(parts, sort_keys=True)


def _cache_file(key: str) -> Path:
    import hashlib

    return cache_dir() / f"skops-trusted-types-{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def _read_lists(key: str) -> dict[str, list] | None:
    """NAME -> list from the cache file written for KEY, or None."""
    import builtins

    try:
        data = json.loads(_cache_file(key).read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        lists: dict[str, list] = {name: list(values) for name, values in data["names"].items()}
        for name, type_names in data["builtin_types"].items():
            lists[name] = [getattr(builtins, t) for t in type_names]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return lists


def _write_lists(key: str, module: Any) -> None:
    """Keep MODULE's public lists for KEY; nothing when one of them is not a list of names or of
    builtin types (a skops this does not know: it computes them every time)."""
    import builtins
    import tempfile

    names: dict[str, list[str]] = {}
    types: dict[str, list[str]] = {}
    for name, value in vars(module).items():
        if not name.isupper() or name.startswith("_"):
            continue
        if not isinstance(value, list):
            return
        if all(isinstance(v, str) for v in value):
            names[name] = value
        elif all(isinstance(v, type) and getattr(builtins, v.__name__, None) is v for v in value):
            types[name] = [v.__name__ for v in value]
        else:
            return
    target = _cache_file(key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError:
        return  # a read-only home: computed again next time
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"key": key, "names": names, "builtin_types": types}, out)
        os.replace(tmp, target)  # readers see the whole file or none
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def _forget_skops_io() -> None:
    for name in [n for n in sys.modules if n == "skops.io" or n.startswith("skops.io.")]:
        del sys.modules[name]


def import_skops_io() -> Any:
    """`skops.io`, its trusted-type lists taken from the cache when it holds this environment's."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import types

    key = trusted_types_key()
    lists = _read_lists(key) if key else None
    if lists is not None:
        stand_in = types.ModuleType(_TRUSTED, "skops's trusted-type lists, from nbops's cache")
        vars(stand_in).update(lists)
        sys.modules[_TRUSTED] = stand_in
        try:
            import skops.io

            skops.io._trusted_types = stand_in  # as an import would have bound it
            return skops.io
        except ImportError:  # a name skops wants that the cache lacks: import it as skops does
            _forget_skops_io()
    import skops.io

    if key:
        _write_lists(key, sys.modules[_TRUSTED])
    return skops.io
