"""Registered model names MLflow (every store kind) and nbops accept: checked when a run is
planned, before any kernel starts, rather than when registration fails after the run."""

from __future__ import annotations

import posixpath

# the longest registered model name every MLflow store keeps (the SQL stores' name column is 256
# characters; sqlite does not enforce it, so a name that works locally fails on a team server)
MAX_MODEL_NAME = 256
# refused by MLflow (`mlflow.utils.validation._validate_model_name`: '/' and ':'; the file store
# also '%' and '\\'), or unusable in nbops: '@' splits NAME@ALIAS, and a quote breaks the
# `name = '...'` filter versions are searched by
_REFUSED = {"/": "a slash", ":": "a colon", "%": "a percent sign", "\\": "a backslash",
            "@": "'@' (nbops reads NAME@ALIAS)", "'": "a single quote"}


def validate_model_name(name: object) -> str | None:
    """None when MLflow's registry (every store kind) and nbops accept NAME as a registered model
    name, else the reason it would be refused."""
    if not isinstance(name, str):
        return f"a model name must be a string, got {type(name).__name__}"
    if not name.strip():
        return "the model name is empty"
    if len(name) > MAX_MODEL_NAME:
        return f"the model name is {len(name)} characters long (at most {MAX_MODEL_NAME})"
    for char, what in _REFUSED.items():
        if char in name:
            return f"the model name {name!r} contains {what}"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"the model name {name!r} contains a control character"
    norm = posixpath.normpath(name)  # MLflow's path_not_unique: names may become file names
    if norm != name or norm in (".", "..") or norm.startswith(".."):
        return f"the model name {name!r} would resolve to another name as a path ({norm!r})"
    return None
