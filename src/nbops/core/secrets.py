"""What looks like a secret: the one rule set for parameter names and values nbops never stores
and for `nbops check`'s NB005 (hard-coded secrets in a notebook's code).

A parameter whose name or value matches is logged as `***` in MLflow and in the injected cell of
every saved notebook; the kernel still gets the real value (through its environment, see
`run/secret_params.py`). `[tool.nbops] secret_params` names more parameters to treat so.
`review/check.py` applies the same rules to names assigned a literal, keyword arguments, dict
keys and environment variables, and to every string literal.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# a name that holds a secret ends with the secret's word: `api_key`, `DB_PASSWORD`, `client_secret`,
# `dbPassword` (see snake()); `TOKEN_URL`, `token_pattern`, `tokenizer`, `max_tokens`,
# `secret_name` do not
SECRET_NAME = re.compile(
    r"(^|_|\.)(password|passwd|passphrase|pass|pwd|secret|token|auth_?token|api_?key|apikey|access_?key"
    r"|private_?key|secret_?key|client_?secret|credentials?|authorization|bearer|session_?key|signing_?key)$",
    re.I,
)
# a credential's own shape, anywhere in a string
SECRET_VALUE = re.compile(
    r"AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}|glpat-[\w-]{20}|xox[baprs]-[A-Za-z0-9-]{10,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----|sk-[A-Za-z0-9_-]{20,}"
    r"|\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"  # a JSON web token
)
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@", re.I)
BEARER = re.compile(r"\b(?:bearer|basic)\s+([\w.~+/=-]{8,})", re.I)
# not a secret but its stand-in: "<your-key>", "xxxx", "***", "${TOKEN}", "{password}", "%s",
# "changeme", an environment variable's name ("OPENAI_API_KEY"), a file path (a secret's file, not
# the secret: "keys/id_rsa", "creds.json"), a plain URL
PLACEHOLDER = re.compile(
    r"^([x*.#?_-]+|<.*>|\{\w*\}|\$\{?\w+\}?|%\(?\w*\)?s|(?-i:[A-Z][A-Z0-9]*(_[A-Z0-9]+)+)|none|null"
    r"|(\.{0,2}/|~/).*|(?-i:[a-z0-9_.-]+(/[a-z0-9_.-]+)+)|.*\.(json|pem|key|txt|ya?ml|env|cfg|ini|toml)"
    r"|[a-z][a-z0-9+.-]*://.*)$"
    r"|your|change.?me|placeholder|replace|redacted|dummy|example|xxx|todo|fixme|insert|\{\{",
    re.I,
)


def snake(name: str) -> str:
    """`dbPassword` -> `db_Password`, `X-API-Key` -> `X_API_Key`: the words SECRET_NAME looks at."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace("-", "_").replace(" ", "_")


def is_placeholder(value: str) -> bool:
    return bool(PLACEHOLDER.search(value))


def secret_in(text: str) -> str | None:
    """What credential TEXT holds, if any (a stand-in such as `user:<password>@` is none)."""
    if any(not is_placeholder(m.group()) for m in SECRET_VALUE.finditer(text)):
        return "string looks like a credential"
    if any(not is_placeholder(m.group(1)) for m in URL_CREDENTIALS.finditer(text)):
        return "URL holds a password"
    if any(re.search(r"\d", m.group(1)) and not is_placeholder(m.group(1)) for m in BEARER.finditer(text)):
        return "string holds an Authorization token"
    return None


def is_secret_name(name: str, extra: tuple[str, ...] = ()) -> bool:
    return name in extra or bool(SECRET_NAME.search(snake(name)))


def is_secret_value(value: Any) -> bool:
    return isinstance(value, str) and secret_in(value) is not None


def secret_names(values: dict[str, Any], extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The parameters of VALUES to keep out of every store."""
    return tuple(sorted(n for n, v in values.items() if is_secret_name(n, extra) or is_secret_value(v)))


def masked(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: (MASK if k in names else v) for k, v in values.items()}
