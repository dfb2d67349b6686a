"""`nbops init DIR`: a new project with this repository's layout, ready for notebooks and CI."""

from __future__ import annotations

import json
import re
from pathlib import Path

from nbops.core.config import load_settings
from nbops.core.errors import ConfigError
from nbops.core.files import SHIPPED as PACKAGE
from nbops.core.files import writable_dir

CI_FILES = {
    "github": {".github/workflows/notebooks.yml": "ci/github/notebooks.yml",
               ".github/workflows/review.yml": "ci/github/review.yml",
               ".github/workflows/review-comment.yml": "ci/github/review-comment.yml",
               ".github/workflows/retrain.yml": "ci/github/retrain.yml"},
    "gitlab": {".gitlab-ci.yml": "ci/gitlab/.gitlab-ci.yml"},
}

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.10"
# the nbops this project was made with; CI installs it with `pip install -e .` (a git URL or
# another index: `nbops init --nbops-spec 'nbops @ git+https://...'`, or PIP_EXTRA_INDEX_URL)
dependencies = [{spec}]

[tool.setuptools.packages.find]
where = ["src"]

[tool.nbops]
# tracking_uri = "sqlite:///mlflow.db"   # or set MLFLOW_TRACKING_URI to your team's server
# in CI, a missing or empty MLFLOW_TRACKING_URI secret is an error, not a throwaway sqlite file
require_tracking_server = true

{runners}
[tool.ruff.lint]
select = ["E", "F", "W", "B"]
ignore = ["E501"]

[tool.nbqa.addopts]
ruff = ["--extend-ignore=E402,B018"]
'''

# the runners of the project's CI only: a GitLab project gets no GitHub runs-on labels (issue 23)
RUNNERS = {
    "github": '''[tool.nbops.runners]
# GitHub Actions runs-on labels by the hardware a notebook asks for
cpu = "ubuntu-latest"
gpu = ["self-hosted", "linux", "x64", "gpu"]
''',
    "gitlab": '''[tool.nbops.runners.gitlab]
# GitLab runner tags and images of the child pipeline's jobs, by the hardware a notebook asks for
cpu = []                # no tags: any runner that takes untagged jobs
gpu = ["gpu"]
image = "python:3.11"   # "" leaves the job to the runner's default (a shell runner)
# gpu_image = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
''',
}
GITIGNORE = ("mlflow.db\nmlruns/\nruns/\nreview/\n.nbops/\n.venv/\n__pycache__/\n.ipynb_checkpoints/\n"
             "*.egg-info/\nbuild/\ndist/\n")

FEATURES = '''"""Feature code shared by this project's notebooks (a change here re-runs the notebooks that
import it: see `nbops plan`)."""


def add_ratio_features(frame):
    """Pairwise ratios of the first two columns, a small example of shared feature code."""
    out = frame.copy()
    first, second = out.columns[:2]
    out[f"{first}_over_{second}"] = out[first] / out[second].where(out[second] != 0, 1)
    return out
'''

SMOKE_TEST = '''"""Smoke test: every notebook loads, has a parameters cell, and passes `nbops check`."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_notebooks_pass_nbops_check():
    nbops = Path(sys.executable).with_name("nbops")
    done = subprocess.run([str(nbops), "check", "notebooks"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
'''

README = '''# {name}

Experiments as parameterised notebooks, run with papermill and tracked in MLflow by
[nbops](https://pypi.org/project/nbops/).

```bash
pip install -e .
nbops setup                                  # git filter (outputs out of commits), hooks, nbdime diffs
nbops new classification my_experiment -p dataset=wine
nbops run notebooks/*.ipynb                  # results in ./mlflow.db: mlflow ui --backend-store-uri sqlite:///mlflow.db
nbops check                                  # before committing
```

Shared code lives in `src/{package}/`; notebooks import it (`from {package}.features import ...`).
CI runs the notebooks a push affects and reviews notebook changes on every {request}.
'''


def spec_from_direct_url(info: dict) -> str | None:
    """The requirement that installs what PEP 610's direct_url.json INFO says this nbops came
    from, when a CI runner can reach it too: a git repository at the commit, or an https archive.
    None for a local folder, file or editable checkout (and for an index: the version pins it)."""
    url = str(info.get("url", ""))
    vcs = info.get("vcs_info") or {}
    if vcs.get("vcs") == "git" and vcs.get("commit_id") and url.startswith(("https://", "ssh://")):
        return f"nbops @ git+{url}@{vcs['commit_id']}"
    if "archive_info" in info and url.startswith("https://"):
        return f"nbops @ {url}"
    return None


def nbops_requirement(spec: str | None = None) -> str:
    """The project's dependency on nbops: SPEC (a PEP 508 requirement naming nbops: a version,
    `nbops @ git+https://...`, `nbops @ https://.../nbops-X-py3-none-any.whl`), by default the
    running nbops pinned: the git commit or archive URL it was installed from, else its version."""
    from nbops import __version__

    if spec is None:
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            direct = distribution("nbops").read_text("direct_url.json")
        except PackageNotFoundError:
            direct = None
        try:
            found = spec_from_direct_url(json.loads(direct)) if direct else None
        except (ValueError, AttributeError):  # a damaged direct_url.json: the version then
            found = None
        return found or f"nbops=={__version__}"
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(spec)
    except InvalidRequirement as exc:
        raise ConfigError(f"--nbops-spec {spec!r} is not a requirement: {exc}",
                          hint="e.g. 'nbops==0.1.0' or 'nbops @ git+https://github.com/ORG/nbops@v0.1.0'") from None
    if req.name.lower() != "nbops":
        raise ConfigError(f"--nbops-spec {spec!r} names {req.name!r}, not nbops",
                          hint="e.g. 'nbops @ git+https://github.com/ORG/nbops@v0.1.0'")
    return str(req)


def _files(name: str, package: str, ci: str, spec: str) -> dict[str, str | Path]:
    files: dict[str, str | Path] = {
        "pyproject.toml": PYPROJECT.format(name=name, spec=json.dumps(spec), runners=RUNNERS[ci]),
        "README.md": README.format(name=name, package=package,
                                   request="pull request" if ci == "github" else "merge request"),
        f"src/{package}/__init__.py": "",
        f"src/{package}/features.py": FEATURES,
        "tests/test_smoke.py": SMOKE_TEST,
        ".gitignore": GITIGNORE,
        ".gitattributes": "*.ipynb diff=jupyternotebook merge=jupyternotebook\n",
        ".pre-commit-config.yaml": PACKAGE.joinpath("precommit.yaml"),
    }
    for tpl in sorted((PACKAGE / "templates").glob("*.ipynb")):
        files[f"templates/{tpl.name}"] = tpl
    for dest, src in CI_FILES[ci].items():
        files[dest] = PACKAGE / src
    return files


def init_project(dest: Path, ci: str = "github", name: str | None = None, force: bool = False,
                 nbops_spec: str | None = None) -> list[str]:
    """Write the project; returns the files written. Nothing is written if any would be
    overwritten without `force`. NBOPS_SPEC: the project's requirement on nbops (default: this
    version, pinned)."""
    from nbops.ci.scaffold import new_notebook

    dest = dest.resolve()
    writable_dir(dest, "nbops init")
    name = name or dest.name
    package = re.sub(r"\W", "_", name.lower()).strip("_") or "project"
    if not re.fullmatch(r"[A-Za-z][\w\-]*", name):
        raise ConfigError(f"bad project name {name!r}", hint="letters, digits, '-' and '_', e.g. --name churn-model")
    files = _files(name, package, ci, nbops_requirement(nbops_spec))
    example = "notebooks/example.ipynb"
    existing = [rel for rel in [*files, example] if (dest / rel).exists()]
    if existing and not force:
        raise ConfigError(f"{dest}: would overwrite {', '.join(existing)}",
                         hint="pass --force to overwrite, or choose an empty folder")
    for rel, content in files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            path.write_bytes(content.read_bytes())
        else:
            path.write_text(content, encoding="utf-8")
    settings = load_settings(dest)
    new_notebook(settings, "classification", "example", {"dataset": "iris"}, force=True)
    return [*files, example]
