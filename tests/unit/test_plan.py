"""`nbops plan` in a project with src/ modules, data and a GPU notebook: in-process, no kernel
(`nbops run --changed` is in tests/integration/test_plan.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbops.cli.main import main
from tests.conftest import commit_all, git, write_notebook


def user_notebook(root, name, code, meta=None):
    return write_notebook(root / "notebooks" / f"{name}.ipynb", [
        ("code", "factor = 2", ["parameters"]),
        ("code", code),
    ], meta or {})


@pytest.fixture
def repo(project, monkeypatch):
    """A project made by `nbops init` (its example notebook included) plus three notebooks:
    a and b import src/demo/features.py, b declares a data file, g needs a GPU."""
    from nbops.ci.init import init_project

    init_project(project, name="demo", force=True)
    for var in ("CI", "GITHUB_ACTIONS", "GITLAB_CI"):  # init's require_tracking_server: not in CI here
        monkeypatch.delenv(var, raising=False)
    pkg = project / "src" / "demo"
    (pkg / "helpers.py").write_text("def twice(x):\n    return 2 * x\n")
    (pkg / "features.py").write_text("from .helpers import twice\n\ndef double(x):\n    return twice(x)\n")
    (pkg / "unused.py").write_text("X = 1\n")
    (project / "data").mkdir()
    (project / "data" / "train.csv").write_text("a,b\n1,2\n")
    use = "import nbops\nfrom demo.features import double\nnbops.record('value', double(factor))"
    user_notebook(project, "a", use)
    user_notebook(project, "b", use, {"data": ["data/train.csv"]})
    user_notebook(project, "g", "import nbops\nnbops.record('value', factor)", {"resources": {"gpu": 1}})
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        'gpu = ["self-hosted", "linux", "x64", "gpu"]', 'gpu = ["self-hosted", "gpu-a100"]'))
    commit_all(project, "base")
    return project


def plan(capsys, *args) -> dict[str, dict]:
    assert main(["plan", *args]) == 0
    return {e["notebook"]: e for e in json.loads(capsys.readouterr().out)["include"]}


def test_plan_follows_notebooks_imports_and_data(repo, capsys):
    base = git(repo, "rev-parse", "HEAD")
    assert plan(capsys, "--base", base) == {}

    user_notebook(repo, "a", "import nbops\nfrom demo.features import double\nnbops.record('value', double(3))")
    entries = plan(capsys, "--base", base)
    assert list(entries) == ["notebooks/a.ipynb"]
    assert entries["notebooks/a.ipynb"]["reason"] == "notebooks/a.ipynb changed"
    git(repo, "checkout", "--", "notebooks/a.ipynb")

    (repo / "src" / "demo" / "helpers.py").write_text("def twice(x):\n    return x + x\n")
    entries = plan(capsys, "--base", base)
    assert sorted(entries) == ["notebooks/a.ipynb", "notebooks/b.ipynb"]
    assert entries["notebooks/b.ipynb"]["reason"] == "imports src/demo/helpers.py changed"
    git(repo, "checkout", "--", "src")

    (repo / "src" / "demo" / "unused.py").write_text("X = 2\n")
    assert plan(capsys, "--base", base) == {}

    (repo / "data" / "train.csv").write_text("a,b\n1,3\n")
    entries = plan(capsys, "--base", base)
    assert list(entries) == ["notebooks/b.ipynb"]
    assert entries["notebooks/b.ipynb"]["reason"] == "data data/train.csv changed"

    entries = plan(capsys, "--all")
    assert entries["notebooks/g.ipynb"]["runs_on"] == ["self-hosted", "gpu-a100"]
    assert entries["notebooks/g.ipynb"]["gpu"] == 1
    assert entries["notebooks/a.ipynb"]["runs_on"] == "ubuntu-latest"
    assert entries["notebooks/a.ipynb"]["timeout_minutes"] == 60


def test_github_and_gitlab_formats(repo, capsys):
    assert main(["plan", "--all", "--format", "github"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "count=4" and lines[0].startswith("matrix=")  # a, b, g and init's example
    assert len(json.loads(lines[0][len("matrix="):])["include"]) == 4
    import yaml

    assert main(["plan", "--all", "--format", "gitlab"]) == 0
    child = yaml.safe_load(capsys.readouterr().out)
    cpu, gpu = child["run notebooks/a.ipynb"], child["run notebooks/g.ipynb"]
    # GitLab's own defaults, not GitHub's labels: any runner for CPU, the `gpu` tag and a CUDA image
    assert "tags" not in cpu and cpu["image"] == "python:3.11"
    assert gpu["tags"] == ["gpu"] and "cuda" in gpu["image"]
    from nbops.ci.plan import GITLAB_INSTALL

    for job in (cpu, gpu):  # a child pipeline inherits no `default:` from its parent
        assert job["before_script"] == [GITLAB_INSTALL]
        assert job["cache"]["paths"] == [".cache/pip"]
        assert job["variables"]["PIP_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/pip"
    assert cpu["cache"]["key"] != gpu["cache"]["key"]  # different images, different wheels
    assert cpu["script"][-1] == "nbops run notebooks/a.ipynb --output-dir runs"
    assert cpu["variables"]["NBOPS_REASON"] == "--all" and cpu["timeout"] == "60 minutes"


def test_gitlab_runners_section(repo, capsys, tmp_path):
    """[tool.nbops.runners.gitlab] sets the child jobs' tags and images; '' means no image (the
    runner's own default, or a shell runner). The child pipeline passes GitLab's schema."""
    import subprocess
    import sys

    import yaml

    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + (
        '\n[tool.nbops.runners.gitlab]\ncpu = "k8s"\ngpu = ["gpu", "a100"]\nimage = ""\n'
        'gpu_image = "registry.example.com/ml/cuda:12.4"\n'))
    assert main(["plan", "--all", "--format", "gitlab"]) == 0
    captured = capsys.readouterr()
    text = captured.out
    # the log names GitLab's runner tags, not GitHub's runs-on labels
    assert "run notebooks/g.ipynb on GitLab runner tags ['gpu', 'a100']" in captured.err
    assert "self-hosted" not in captured.err
    child = yaml.safe_load(text)
    cpu, gpu = child["run notebooks/a.ipynb"], child["run notebooks/g.ipynb"]
    assert cpu["tags"] == ["k8s"] and "image" not in cpu
    assert gpu["tags"] == ["gpu", "a100"] and gpu["image"] == "registry.example.com/ml/cuda:12.4"
    out = tmp_path / "child.yml"
    out.write_text(text)
    schema = Path(sys.executable).with_name("check-jsonschema")
    done = subprocess.run([str(schema), "--builtin-schema", "vendor.gitlab-ci", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

    # nothing to run: still a valid child pipeline with one job, on the CPU runner
    assert main(["plan", "--base", "HEAD", "--format", "gitlab"]) == 0
    child = yaml.safe_load(capsys.readouterr().out)
    assert list(child) == ["stages", "nothing to run"] and child["nothing to run"]["tags"] == ["k8s"]


@pytest.mark.parametrize("table, message", [
    ('[tool.nbops.runners.gitlab]\ngpus = ["gpu"]', "[tool.nbops.runners.gitlab]: unknown key 'gpus'"),
    ('[tool.nbops.runners.gitlab]\ngpu = [1]',
     "[tool.nbops.runners.gitlab]: 'gpu' must be a label or a list of labels"),
    ('[tool.nbops.runners.gitlab]\nimage = 3', "[tool.nbops.runners.gitlab]: image must be an image name"),
    ('[tool.nbops.runners]\ngitlab = "gpu"', "[tool.nbops.runners.gitlab] must be a table"),
    ('[tool.nbops.runners]\ncpu = 3', "[tool.nbops.runners]: 'cpu' must be a label or a list of labels"),
])
def test_bad_runners_section_is_one_line(project, capsys, table, message):
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n" + table + "\n")
    assert main(["plan", "--all", "--format", "gitlab"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_project_below_the_git_top_level(tmp_path, monkeypatch, capsys):
    """A project in a subfolder of a larger repository: git prints paths from its top level."""
    top = tmp_path / "mono"
    root = top / "ml" / "proj"
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.nbops]\n")
    path = user_notebook(root, "a", "print(factor)")
    git(top, "init", "-q", "-b", "main")
    base = commit_all(top, "base")
    user_notebook(root, "a", "print(factor * 2)")
    commit_all(top, "change")
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert list(plan(capsys, "--base", base)) == ["notebooks/a.ipynb"]
    assert main(["review", "--base", base, "--out", "D"]) == 0
    assert "`notebooks/a.ipynb` (modified)" in (root / "D" / "review.md").read_text()
    assert path.exists()
