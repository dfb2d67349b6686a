"""papermill parity in `nbops run` (issue 13 item 4), on real kernels and a real MLflow store:
a notebook without kernelspec, --kernel, --log-output, --prepare-only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

from nbops.cli.main import main
from tests.conftest import all_runs, commit_all, write_notebook

NBOPS = str(Path(sys.executable).with_name("nbops"))


def scripted_notebook(path: Path) -> Path:
    """A notebook as a script writes it with nbformat: no metadata.kernelspec, no language_info."""
    params = nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]})
    work = nbformat.v4.new_code_cell("import nbops\nnbops.record('double', n * 2)\nprint('n is', n)")
    nb = nbformat.v4.new_notebook(cells=[params, work])
    assert "kernelspec" not in nb.metadata
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def executed(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def printed(cell: dict) -> str:
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))


def only_run_output(root: Path, stem: str) -> Path:
    [out] = sorted((root / "runs" / stem).glob("*.ipynb"))
    return out


def test_a_notebook_without_kernelspec_runs_with_parameters_on_python3(project, mlflow_client, capsys):
    nb = scripted_notebook(project / "notebooks" / "scripted.ipynb")
    commit_all(project)

    code = main(["run", str(nb), "-p", "n=21"])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    notes = [line for line in captured.err.splitlines() if "kernelspec" in line]
    assert len(notes) == 1 and "python3" in notes[0] and "scripted.ipynb" in notes[0], captured.err
    [run] = all_runs(mlflow_client())
    assert run.info.status == "FINISHED"
    assert run.data.params["n"] == "21" and run.data.metrics["double"] == 42
    cells = executed(only_run_output(project, "scripted"))
    assert "n = 21" in "".join(cells[1]["source"])  # papermill's injected cell, in Python
    assert "n is 21" in printed(cells[2])


def other_kernel(tmp_path: Path, name: str) -> Path:
    """A second installed Python kernel that says who it is through its environment."""
    data = tmp_path / "jupyter-data"
    spec = data / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name, "language": "python", "env": {"WHICH_KERNEL": name},
    }))
    return data


def test_kernel_flag_replaces_the_notebooks_kernelspec(project, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JUPYTER_PATH", str(other_kernel(tmp_path, "other-py")))
    nb = write_notebook(project / "notebooks" / "k.ipynb", [
        ("code", "x = 1", ["parameters"]),
        ("code", "import os\nprint('kernel:', os.environ.get('WHICH_KERNEL'), x)"),
    ])
    data = json.loads(nb.read_text())
    data["metadata"]["kernelspec"]["name"] = "not-installed-here"  # would fail without --kernel
    nb.write_text(json.dumps(data))
    commit_all(project)

    code = main(["run", str(nb), "--kernel", "other-py", "-p", "x=7", "--no-track"])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    cells = executed(only_run_output(project, "k"))
    assert "kernel: other-py 7" in printed(cells[-1])
    assert "kernelspec" not in captured.err  # the notebook had one: no note


def test_an_unknown_kernel_is_a_one_line_error_before_anything_runs(project, capsys):
    nb = write_notebook(project / "notebooks" / "k.ipynb", [("code", "print(1)")])
    commit_all(project)

    code = main(["run", str(nb), "--kernel", "no-such-kernel"])
    err = capsys.readouterr().err
    assert code == 2
    [line] = err.strip().splitlines()
    assert "--kernel" in line and "no-such-kernel" in line and "python3" in line  # installed ones listed
    assert "Traceback" not in err
    assert not (project / "runs" / "k").exists() and not (project / "mlflow.db").exists()


def test_log_output_streams_cell_output_prefixed_by_notebook(project):
    for name in ("a", "b"):
        write_notebook(project / "notebooks" / f"{name}.ipynb", [
            ("code", f"import sys\nprint('hello from {name}')\nprint('warn {name}', file=sys.stderr)"),
        ])
    commit_all(project)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "CI")}

    proc = subprocess.run([NBOPS, "run", "notebooks/a.ipynb", "notebooks/b.ipynb", "--log-output",
                           "--no-track", "-j", "2"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("a", "b"):
        assert f"notebooks/{name}.ipynb | hello from {name}" in proc.stderr, proc.stderr
        assert f"notebooks/{name}.ipynb | warn {name}" in proc.stderr, proc.stderr

    single = subprocess.run([NBOPS, "run", "notebooks/a.ipynb", "--no-track", "--log-output"],
                            cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    assert "hello from a" in single.stderr.splitlines()  # one notebook: no prefix
    quiet = subprocess.run([NBOPS, "run", "notebooks/a.ipynb", "--no-track"],
                           cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and "hello from a" not in quiet.stderr + quiet.stdout


def test_prepare_only_writes_the_parameterised_notebook_without_running_it(project, capsys):
    nb = write_notebook(project / "notebooks" / "p.ipynb", [
        ("code", "C = 1.0", ["parameters"]),
        ("code", "raise RuntimeError('executed')"),  # a run would fail here
    ])
    scripted = scripted_notebook(project / "notebooks" / "scripted.ipynb")
    commit_all(project)

    code = main(["run", str(nb), "-p", "C=0.5", "--prepare-only"])
    out = capsys.readouterr().out
    assert code == 0, out
    prepared = only_run_output(project, "p")
    assert f"prepared {prepared.relative_to(project)}" in out
    cells = executed(prepared)
    injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and "C = 0.5" in "".join(injected[0]["source"])
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in cells if c["cell_type"] == "code")
    assert not list((project / "runs" / "p").glob("*.kernel.log"))
    assert not (project / "mlflow.db").exists()  # no MLflow run, not even a store

    assert main(["run", str(scripted), "-p", "n=3", "--prepare-only"]) == 0  # no kernelspec either
    cells = executed(only_run_output(project, "scripted"))
    assert "n = 3" in "".join(cells[1]["source"])
    assert not (project / "mlflow.db").exists()



def test_sweep_takes_the_kernel_flag_too(project, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JUPYTER_PATH", str(other_kernel(tmp_path, "other-py")))
    nb = write_notebook(project / "notebooks" / "s.ipynb", [
        ("code", "x = 1", ["parameters"]),
        ("code", "import os\nprint('kernel:', os.environ.get('WHICH_KERNEL'), x)"),
    ])
    commit_all(project)

    assert main(["sweep", str(nb), "-p", "x=1,2", "-k", "no-such-kernel", "--no-track"]) == 2
    assert "--kernel: no Jupyter kernel named 'no-such-kernel'" in capsys.readouterr().err
    assert not (project / "runs" / "s").exists()

    assert main(["sweep", str(nb), "-p", "x=1,2", "-k", "other-py", "--no-track", "-j", "1"]) == 0
    outputs = sorted((project / "runs" / "s").glob("*.ipynb"))
    assert len(outputs) == 2
    assert sorted(printed(executed(p)[-1]).strip() for p in outputs) == ["kernel: other-py 1", "kernel: other-py 2"]
