"""What looks like a secret: parameter names and values that nbops never stores.

A parameter whose name or value matches is logged as `***` in MLflow and in the injected cell of
every saved notebook; the kernel still gets the real value (through its environment, see
`run/engine.py`). `[tool.nbops] secret_params` names more parameters to treat so.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# names: password, db_password, api_key, apikey, secret, client_secret, token, access_token,
# auth, credentials, private_key ... but not token_pattern, tokenizer, max_tokens, n_tokens
_SECRET_NAME = re.compile(
    r"(^|_)(pass(word|wd|phrase)?|pwd|secret|api_?key|access_?key|private_?key|credentials?|auth"
    r"|token|bearer|session_?key|signing_?key)($|_(?!pattern|type|count|len|length|limit|ids?$))",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"(^sk-[A-Za-z0-9_-]{16,}$)"  # OpenAI-style keys
    r"|(^(ghp|gho|ghs|github_pat|glpat|xox[abpr])[-_][A-Za-z0-9_-]{10,}$)"  # GitHub, GitLab, Slack
    r"|(^AKIA[0-9A-Z]{16}$)"  # AWS access key id
    r"|(^Bearer\s+\S{8,}$)"  # an HTTP Authorization value
    r"|(^-----BEGIN [A-Z ]*PRIVATE KEY-----)"
    r"|([a-z][\w+.-]*://[^/@\s:]+:[^/@\s]+@)",  # credentials inside a URL
    re.IGNORECASE,
)


def is_secret_name(name: str, extra: tuple[str, ...] = ()) -> bool:
    return name in extra or bool(_SECRET_NAME.search(name))


def is_secret_value(value: Any) -> bool:
    return isinstance(value, str) and bool(_SECRET_VALUE.search(value.strip()))


def secret_names(values: dict[str, Any], extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The parameters of VALUES to keep out of every store."""
    return tuple(sorted(n for n, v in values.items() if is_secret_name(n, extra) or is_secret_value(v)))


def masked(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: (MASK if k in names else v) for k, v in values.items()}
