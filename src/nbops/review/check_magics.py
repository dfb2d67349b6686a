"""IPython line magics that run a Python statement: `%time x = f()`, `%timeit -n 10 y = g(x)`.

ast cannot parse a magic line, and ruff treats one as opaque, so for `nbops check` the statement
in it was invisible: `import pandas as pd` then `%time df = pd.read_csv(...)` read as "`pandas`
imported but unused" (F401), and a later `print(df)` as "Undefined name `df`" (F821) (issue 23).
Here such a line becomes its statement (same line, same indentation) for nbops's own checks, and
ruff's F401/F821 findings about names such statements use or assign are dropped.
"""

from __future__ import annotations

import ast
import re

from nbops.notebook.inputs import python_source

# magics whose argument is a statement (options first for timeit/prun/memit)
_STATEMENT_MAGIC = re.compile(r"^(\s*)%(time|timeit|prun|memit|mprun)\s+(.*)$")
_MAX_OPTIONS = 6  # `-n 10 -r 3 -q` ...: tokens tried away before the statement


def _statement(rest: str) -> str | None:
    """The Python statement at the end of a magic's argument REST (after its options), if any."""
    tokens = rest.split(" ")
    for skip in range(min(len(tokens), _MAX_OPTIONS + 1)):
        if skip and not tokens[0].startswith("-"):
            return None  # only options (and their values) come before the statement
        candidate = " ".join(tokens[skip:]).strip()
        if not candidate:
            return None
        try:
            ast.parse(candidate)
        except SyntaxError:
            continue
        return candidate
    return None


def code_text(source: str) -> str:
    """SOURCE with each statement magic replaced by its statement and every other magic or shell
    escape blanked (notebook/inputs.py: python_source), line for line."""
    lines = []
    for line in source.splitlines():
        m = _STATEMENT_MAGIC.match(line)
        statement = _statement(m.group(3)) if m else None
        lines.append(m.group(1) + statement if m and statement else line)
    return python_source("\n".join(lines))


def magic_names(cells: list[str]) -> tuple[set[str], set[str]]:
    """(names assigned, names used) by the statement magics of these code cells' sources; a used
    module's import names count both as bound (`pd`) and as imported (`pandas`). The cells' imports
    are read only where a magic uses a name: most notebooks have no statement magic, and walking
    every cell's tree was most of `nbops check`'s time (bench/bench_check.py)."""
    stored: set[str] = set()
    loaded: set[str] = set()
    for source in cells:
        if "%" not in source:
            continue
        for line in source.splitlines():
            m = _STATEMENT_MAGIC.match(line)
            statement = _statement(m.group(3)) if m else None
            if statement:
                for node in ast.walk(ast.parse(statement)):
                    if isinstance(node, ast.Name):
                        (stored if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
    if loaded:
        imports = _imports(cells)
        loaded |= {imports[name] for name in loaded if name in imports}
    return stored, loaded


def _imports(cells: list[str]) -> dict[str, str]:
    """{bound name: imported module or name} of every import in these code cells."""
    imports: dict[str, str] = {}
    for source in cells:
        if "import" not in source:
            continue
        try:
            tree = ast.parse(code_text(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                module = f"{node.module}." if isinstance(node, ast.ImportFrom) and node.module else ""
                imports.update({a.asname or a.name.split(".")[0]: module + a.name for a in node.names})
    return imports


_NAME = re.compile(r"`([^`]+)`")


def false_positive(code: str, message: str, names: tuple[set[str], set[str]]) -> bool:
    """Whether ruff's finding (CODE, MESSAGE) is about a name a statement magic assigns (F821)
    or uses (F401), NAMES being magic_names()'s."""
    m = _NAME.search(message)
    if not m:
        return False
    stored, loaded = names
    if code == "F821":
        return m.group(1) in stored
    if code == "F401":
        name = m.group(1)
        return name in loaded or name.split(".")[0] in loaded or name.rsplit(".", 1)[-1] in loaded
    return False
