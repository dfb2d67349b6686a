"""No function in src/nbops is longer than 60 lines (issue 24: a newcomer reads one function at a
time; a long one is split into steps that say what they do). Nested functions and classes count
toward the function that holds them."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "nbops"
LIMIT = 60


def long_functions(text: str) -> list[tuple[str, int, int]]:
    """(name, first line, length) of each function in TEXT longer than LIMIT lines."""
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > LIMIT:
                out.append((node.name, node.lineno, length))
    return out


def test_no_function_is_longer_than_the_limit():
    found = [f"{path.relative_to(SRC)}:{line} {name} ({length} lines)"
             for path in sorted(SRC.rglob("*.py")) for name, line, length in long_functions(path.read_text())]
    assert not found, f"functions over {LIMIT} lines; split them into named steps:\n" + "\n".join(found)


def test_the_check_sees_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    assert long_functions(f"def f():\n{body}\n") == [("f", 1, LIMIT + 1)]
    assert long_functions("def g():\n    return 1\n") == []
