"""Secret parameters reach the kernel through its environment, never through a saved notebook.

papermill is handed masked values (`NAME = "***"` in the injected cell of every saved copy);
`with_secrets` puts each real value in the kernel's environment (as JSON, under
NBOPS_SECRET_<NAME>) and `read_secrets_from_env` makes the injected cell read it from there.
"""

from __future__ import annotations

import json
import os
from typing import Any

from nbops.run.spec import RunSpec


def _secret_env_name(name: str) -> str:
    return f"NBOPS_SECRET_{name}"


def secrets_given(spec: RunSpec) -> tuple[str, ...]:
    """The secret parameters SPEC sets (the others keep the notebook's own value)."""
    return tuple(n for n in spec.secrets if n in spec.overrides)


def with_secrets(env: dict[str, str] | None, spec: RunSpec) -> dict[str, str] | None:
    """ENV (this process's environment when None) plus the real value of each secret given."""
    given = {n: spec.overrides[n] for n in spec.secrets if n in spec.overrides}
    if not given:
        return env
    base = dict(os.environ) if env is None else dict(env)
    return {**base, **{_secret_env_name(n): json.dumps(v) for n, v in given.items()}}


def read_secrets_from_env(nb: Any, names: tuple[str, ...]) -> None:
    """Papermill injected `NAME = "***"` for each secret parameter (it was handed masked values,
    so that no saved copy of the notebook ever holds the secret); make each of those lines read
    the real value from the kernel's environment instead, removing it from there."""
    for cell in nb.cells:
        if "injected-parameters" not in (cell.get("metadata", {}).get("tags") or []):
            continue
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            name = line.split("=", 1)[0].strip()
            if name in names:
                lines[i] = (f'{name} = __import__("json").loads(__import__("os").environ.pop('
                            f'"{_secret_env_name(name)}"))  # a secret: never stored')
        cell.source = "\n".join(lines)
