"""The package's layering rules (ARCHITECTURE.md) and its import weight, checked on the source.

Layers, lowest first: the kernel side (`nbops`, `record`, `kit`, `_kernel`), `core`, `notebook`,
`pipeline`, `run`, then `review`, `ci` and `lifecycle` side by side, and `cli` on top. A module may import its
own layer and the layers below it, never one above or beside it; imports inside functions count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "nbops"
KERNEL_SIDE = {"nbops", "nbops.record", "nbops.kit", "nbops._kernel", "nbops.upstream",
               "nbops._mlflow_private", "nbops._deferred_rfc3987"}
ALLOWED = {
    "kernel": {"kernel"},
    "core": {"core"},
    "notebook": {"core", "notebook"},
    # the graph of a pipeline of notebooks (metadata.nbops.needs): pure, read by run and ci
    "pipeline": {"core", "notebook", "pipeline"},
    "run": {"core", "notebook", "pipeline", "run"},
    "review": {"core", "notebook", "pipeline", "run", "review"},
    "ci": {"core", "notebook", "pipeline", "run", "ci"},
    "lifecycle": {"core", "notebook", "pipeline", "run", "lifecycle"},
    "cli": {"kernel", "core", "notebook", "pipeline", "run", "review", "ci", "lifecycle", "lab", "cli"},
    # `nbops lab`: the Jupyter server's side (templates from ci's scaffold, jobs via `nbops run`)
    "lab": {"core", "notebook", "pipeline", "run", "ci", "lab"},
    # `pytest --nbops`: top layer beside cli, runs notebooks through the run layer
    "testing": {"core", "notebook", "pipeline", "run", "testing"},
}
HEAVY = ("papermill", "nbformat", "nbclient", "mlflow", "scrapbook", "pandas", "numpy", "sklearn",
         "torch", "ray", "fastapi", "scipy", "matplotlib", "nbdime", "rich", "yaml")


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    if module in KERNEL_SIDE:
        return "kernel"
    if module == "nbops.__main__":
        return "cli"
    return module.split(".")[1]


def imports(path: Path) -> set[str]:
    """Every nbops module PATH imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nbops"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if (SRC.parent / node.module.replace(".", "/") / a.name).exists()
                         or (SRC.parent / (node.module.replace(".", "/") + f"/{a.name}.py")).exists())
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; use `from nbops.<layer>...`")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("nbops"))
    return found


MODULES = sorted(SRC.rglob("*.py"))


def test_the_layers_are_the_folders():
    assert {layer(_module(p)) for p in MODULES} == set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_imports_a_layer_above_or_beside_its_own(path):
    own = layer(_module(path))
    bad = sorted(m for m in imports(path) if layer(m) not in ALLOWED[own]
                 # every layer may use the recorder's constants and `nbops.__version__`, and the
                 # MLflow fence (it imports nothing of nbops)
                 and m not in ("nbops", "nbops.record", "nbops._mlflow_private"))
    assert not bad, f"{_module(path)} ({own}) imports {bad}"
    if own != "kernel":  # the kernel-side helpers are the notebooks', never the framework's
        assert "nbops.kit" not in imports(path)


def test_the_rule_check_catches_a_violation(tmp_path):
    # a core module importing the run layer, written beside the tests, never into src/ (a
    # probe there would be collected by a concurrent run, pytest-xdist's other worker included)
    probe = tmp_path / "nbops" / "core" / "_probe_violation.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("def f():\n    from nbops.run.runner import run_specs\n")
    own = layer(".".join(probe.relative_to(tmp_path).with_suffix("").parts))
    assert own == "core"
    assert any(layer(m) not in ALLOWED[own] for m in imports(probe))


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in MODULES
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, long


# pytest imports nbops.testing.plugin (a pytest11 entry point) in every pytest run
@pytest.mark.parametrize("statement", ["import nbops", "import nbops.kit", "import nbops.cli.main",
                                       "import nbops.testing.plugin"])
def test_importing_nbops_loads_no_heavy_library(statement):
    code = (f"import sys; {statement}; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"{statement} loads {done.stdout.strip()}"
