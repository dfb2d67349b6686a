"""nbops/run/papermill_private.py: the installed papermill, nbclient and jupyter_client still
have what nbops's engine relies on, papermill really hands the engine nbops's own keyword
arguments, and run/engine.py passes exactly the ones the fence lists (run/papermill_engine.py
takes them). A release that moves them fails here (`make test` runs this on the oldest and
newest versions nbops supports)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from nbops.run import papermill_private as fence
from tests.conftest import REPO, write_notebook


def test_the_installed_papermill_has_what_the_fence_uses():
    assert fence.missing() == []


def test_papermill_hands_nbops_keyword_arguments_to_the_engine(tmp_path):
    import papermill as pm
    from papermill.engines import papermill_engines

    NBClientEngine, *_ = fence.engine_parts()
    seen: dict = {}

    class Recording(NBClientEngine):  # papermill's own engine class, run without a kernel
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     **kwargs):
            seen.update(kwargs, kernel_name=kernel_name, start_timeout=start_timeout,
                        execution_timeout=execution_timeout)
            nb_man.cell_start(nb_man.nb.cells[0], 0)  # the manager's hooks the engine wraps
            nb_man.cell_complete(nb_man.nb.cells[0], 0)

    papermill_engines.register("nbops-fence-probe", Recording)
    source = write_notebook(tmp_path / "in.ipynb", [("code", "x = 1", ["parameters"])])
    given = {name: f"value of {name}" for name in fence.ENGINE_KWARGS}
    pm.execute_notebook(str(source), str(tmp_path / "out.ipynb"), parameters={"x": 2},
                        engine_name="nbops-fence-probe", kernel_name="python3", start_timeout=7,
                        execution_timeout=9, progress_bar=False, **given)
    assert {k: seen[k] for k in given} == given
    assert (seen["kernel_name"], seen["start_timeout"], seen["execution_timeout"]) == ("python3", 7, 9)
    out = json.loads((tmp_path / "out.ipynb").read_text())
    assert any("x = 2" in "".join(c["source"]) for c in out["cells"])  # papermill's own part done


def test_the_engine_passes_exactly_the_fenced_keyword_arguments():
    # run/engine.py passes them to papermill.execute_notebook; run/papermill_engine.py pops them
    run = REPO / "src" / "nbops" / "run"
    passing = ast.parse((run / "engine.py").read_text(encoding="utf-8"))
    popping = ast.parse((run / "papermill_engine.py").read_text(encoding="utf-8"))
    passed = {k.arg for node in ast.walk(passing) if isinstance(node, ast.Call)
              for k in node.keywords if k.arg and k.arg.startswith("nbops_")}
    popped = {node.args[0].value for node in ast.walk(popping)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "pop" and node.args and isinstance(node.args[0], ast.Constant)
              and str(node.args[0].value).startswith("nbops_")}
    assert passed == popped == set(fence.ENGINE_KWARGS)


def test_kernel_process_is_none_before_a_kernel_starts():
    from jupyter_client.manager import KernelManager

    class Client:
        km = KernelManager(kernel_name="python3")

    assert fence.kernel_process(Client()) is None
    assert fence.kernel_process(object()) is None
    assert Path(fence.__file__).name == "papermill_private.py"
