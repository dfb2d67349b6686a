"""NB005 of `nbops check`: secrets written into a notebook's code, with the rules of
`core/secrets.py` (the same ones that keep secret parameters out of MLflow).

Found: a credential's shape in any string literal; a secret's name (`api_key`, `DB_PASSWORD`)
given a literal by assignment, keyword argument, dict key or environment variable, in Python or
in IPython's `%env` / `%set_env` magics and shell `export` lines, which ast never sees.
"""

from __future__ import annotations

import ast
import re

from nbops.core.secrets import is_placeholder, is_secret_name, secret_in, snake

# `%env API_KEY=...` / `%env API_KEY value` / `%set_env` / `!export` / `export` (a %%bash cell)
_ENV_LINE = re.compile(r"^\s*(?:%env|%set_env|!?\s*export)\s+([A-Za-z_]\w*)(?:\s*=\s*|\s+)(\S.*?)\s*$", re.M)
# what a flag's value looks like: not a secret, even under a secret's name (`%env USE_TOKEN=1`)
_FLAG = re.compile(r"^(true|false|yes|no|on|off|0|1)$", re.I)
ADVICE = "; read it from the environment"


def dotted(node: ast.AST) -> str:
    """`os.environ.get` for the attribute chain NODE, "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def text(node: ast.AST | None) -> str | None:
    """NODE's value when it is a string literal."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _named_literal(name: str | None, value: ast.AST | None, shortest: int = 4) -> bool:
    """A secret's name (`api_key`, `dbPassword`, "X-API-Key") given a literal string that is not
    a stand-in (nor a credential secret_in reports on its own). In code, a literal under SHORTEST
    characters is more often a default than a secret (`password = ""`, `token = "x"`); an
    environment variable set to a literal is a secret whatever its length."""
    literal = text(value)
    if not name or literal is None:
        return False
    literal = literal.strip()
    return (is_secret_name(name) and len(literal) >= max(shortest, 1) and not is_placeholder(literal)
            and not (shortest < 4 and _FLAG.match(literal))
            and literal.lower() not in (name.lower(), snake(name).lower().rsplit(".", 1)[-1])
            and secret_in(literal) is None)


def _env_literal(name: str | None, value: ast.AST | None) -> bool:
    return _named_literal(name, value, shortest=1)


def _environ_target(target: ast.AST) -> str | None:
    """`os.environ["NAME"]` (or `environ["NAME"]`) as an assignment's target: NAME."""
    if isinstance(target, ast.Subscript) and dotted(target.value).endswith("environ"):
        return text(target.slice)
    return None


def _call_findings(number: int, node: ast.Call) -> list[tuple[int, str, str]]:
    out = []
    func = dotted(node.func)
    env = func.endswith(("environ.update", "environ.setdefault", "putenv"))
    for k in node.keywords:
        if (_env_literal if env else _named_literal)(k.arg, k.value):
            out.append((number, "NB005", f"'{k.arg}=' is given a literal{ADVICE}"))
    var = text(node.args[0]) if len(node.args) == 2 else None
    if func.endswith(("environ.setdefault", "putenv")) and _env_literal(var, node.args[-1]):
        out.append((number, "NB005", f"environment variable '{var}' is set to a literal{ADVICE}"))
    # a notebook converted to a script: get_ipython().run_line_magic("env", "API_KEY=...")
    magic = text(node.args[0]) if len(node.args) == 2 else None
    line = text(node.args[1]) if len(node.args) == 2 else None
    if func.endswith("run_line_magic") and magic in ("env", "set_env") and line is not None:
        out += [found[:3] for found in env_magic_findings(number, f"%{magic} {line}")]
    return out


def secret_findings(number: int, nodes: list[ast.AST]) -> list[tuple[int, str, str, int | None]]:
    """(cell, "NB005", message, line in the cell) for the secrets among NODES (every node of cell
    NUMBER's ast)."""
    return [(n, code, message, getattr(node, "lineno", None))
            for node in nodes for n, code, message in _node_findings(number, node)]


def _node_findings(number: int, node: ast.AST) -> list[tuple[int, str, str]]:
    out: list[tuple[int, str, str]] = []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        kind = secret_in(node.value)
        if kind:
            out.append((number, "NB005", kind + ADVICE))
    elif isinstance(node, (ast.Assign, ast.AnnAssign)):
        for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
            var = _environ_target(t)
            if var is not None:
                if _env_literal(var, node.value):
                    out.append((number, "NB005", f"environment variable '{var}' is set to a literal{ADVICE}"))
                continue
            name = text(t.slice) if isinstance(t, ast.Subscript) else dotted(t)
            if _named_literal(name, node.value):
                out.append((number, "NB005", f"'{name}' is assigned a literal{ADVICE}"))
    elif isinstance(node, ast.Call):
        out += _call_findings(number, node)
    elif isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if _named_literal(text(key), value):
                out.append((number, "NB005", f"key '{text(key)}' holds a literal{ADVICE}"))
    return out


def env_magic_findings(number: int, source: str) -> list[tuple[int, str, str, int | None]]:
    """`%env API_KEY=...`, `%env API_KEY value`, `%set_env`, `!export`, `export` in a %%bash cell
    (ast never sees them): a secret's name set to a literal, or any credential-shaped value;
    (cell, "NB005", message, line in the cell)."""
    out: list[tuple[int, str, str, int | None]] = []
    for m in _ENV_LINE.finditer(source):
        name, value = m.group(1), m.group(2).strip("'\"")
        if secret_in(value) or _env_literal(name, ast.Constant(value)):
            out.append((number, "NB005", f"environment variable '{name}' is set to a literal; "
                                         "set it outside the notebook", source.count("\n", 0, m.start(1)) + 1))
    return out
