"""The shipped .gitlab-ci.yml of an `nbops init --ci gitlab` project, executed by gitlab-ci-local
(`make test` installs it into .tools/) with the shell executor: the plan job, the child pipeline
it generates, notebook jobs tracking into a local `mlflow server`; a failing notebook turns the
pipeline red; a pipeline of notebooks (a diamond) runs job by job in the order of its `needs:`,
each job reading its upstreams' runs; the merge-request review job posts its note even though
`nbops check` fails.

What differs from GitLab, and why:
- `image:` lines are dropped (the shell executor runs no containers) and the project sets
  [tool.nbops.runners.gitlab] image = "" so the generated child jobs carry none either.
- The jobs' install step (`pip install $NBOPS_PIP_ARGS $NBOPS_SPEC -e .`) installs nbops from this
  checkout (NBOPS_SPEC) and the project, offline (--no-index --no-deps), into a throwaway venv
  that sees this checkout's .venv for everything else.
- Project CI/CD variables come from .gitlab-ci-local-variables.yml, as gitlab-ci-local reads them
  (the child pipeline sees them too, as on GitLab).
- gitlab-ci-local 4.56 runs a `strategy: depend` child pipeline but does not turn the parent's
  exit status red when a child job fails (its report says FAIL): a pipeline is green here when
  gitlab-ci-local exits 0 and no job of either report failed.
- The GitLab notes API the review job calls is a small local HTTP server recording requests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, commit_all, git, write_notebook
from tests.mlflow_server import mlflow_server

GCL = REPO / ".tools" / "node_modules" / ".bin" / "gitlab-ci-local"
MISSING = [what for what, ok in (("gitlab-ci-local (make tools)", GCL.exists()),
                                 ("rsync", shutil.which("rsync")), ("node", shutil.which("node"))) if not ok]
pytestmark = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"needs {', '.join(MISSING)}: `make test` installs them",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` on a sqlite store, artifacts proxied."""
    assert not MISSING, f"missing: {', '.join(MISSING)} (CI must run the GitLab pipeline test)"
    done = subprocess.run([str(GCL), "--version"], capture_output=True, text=True)
    assert done.returncode == 0, f"gitlab-ci-local does not start (rm -rf .tools; make tools): {done.stderr[-500:]}"
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as running:
        yield running.uri


@pytest.fixture(scope="module")
def runner_env(tmp_path_factory) -> dict[str, str]:
    """The shell runner's environment: a fresh venv (the jobs install into it) that sees this
    checkout's .venv for everything already installed, first on PATH."""
    venv = tmp_path_factory.mktemp("runner") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    parent = sysconfig.get_paths()["purelib"]  # this checkout's .venv
    (site / "_nbops_checkout_venv.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    # two jobs at once install into this one venv (a real runner gives each job its own): two pips
    # uninstalling the same bin/nbops collide (OSError, CI of stop 28), so pip's runs take turns
    bin_ = venv / "bin"
    (bin_ / "python-job").symlink_to((bin_ / "python").resolve())
    for name in ("python", "python3"):
        (bin_ / name).unlink()
        (bin_ / name).write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = -m ] && [ "$2" = pip ]; then exec flock {str(venv / "pip.lock")!r} '
            f'{str(bin_ / "python-job")!r} "$@"; fi\n'
            f'exec {str(bin_ / "python-job")!r} "$@"\n')
        (bin_ / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "NBOPS_", "CI", "GITLAB_", "VIRTUAL_ENV", "PYTEST_"))}
    # the checkout's .venv/bin after the runner's: two jobs at once reinstall nbops into the one
    # runner venv (a real runner gives each job its own), and a job that starts `nbops` while the
    # other has it uninstalled finds the same nbops there rather than "command not found"
    env["PATH"] = os.pathsep.join((str(venv / "bin"), str(Path(sys.executable).parent), env["PATH"]))
    env["VIRTUAL_ENV"] = str(venv)
    return env


def failing_notebook(root: Path) -> Path:
    """A notebook whose second cell raises, committed with an output (`nbops check`: NB001)."""
    path = write_notebook(root / "notebooks" / "broken.ipynb", [
        ("code", "rows = 10", ["parameters"]),
        ("code", "import nbops\nnbops.record('rows', rows)\nraise RuntimeError('deliberately broken')"),
    ])
    nb = json.loads(path.read_text())
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["left in\n"]}]
    nb["cells"][0]["execution_count"] = 1
    path.write_text(json.dumps(nb, indent=1))
    return path


@pytest.fixture(scope="module")
def gl_project(tmp_path_factory, server):
    """An `nbops init --ci gitlab` project pushed to a local 'origin' without its notebooks
    (commit `base`), the notebooks committed on top (`head`)."""
    from nbops.ci.init import init_project

    work = tmp_path_factory.mktemp("gitlab")
    root = work / "proj"
    init_project(root, ci="gitlab", name="glproj")
    ci = root / ".gitlab-ci.yml"
    text, dropped = re.subn(r"(?m)^\s*image: .*\n", "", ci.read_text())
    assert dropped == 1  # default: image: python:3.11
    ci.write_text(text)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    assert "ubuntu-latest" not in text and "self-hosted" not in text  # no GitHub labels (issue 23)
    text, n = re.subn(r'(?m)^image = "python:3.11".*$', 'image = ""  # the shell executor\ngpu_image = ""', text)
    assert n == 1  # init wrote [tool.nbops.runners.gitlab]
    pyproject.write_text(text)
    (root / ".gitlab-ci-local-variables.yml").write_text(json.dumps({
        "MLFLOW_TRACKING_URI": server,
        "NBOPS_SPEC": f"--editable={REPO}",
        "NBOPS_PIP_ARGS": "--no-index --no-deps --no-build-isolation",
    }))
    git(root, "init", "-q", "-b", "main")
    (root / ".git" / "info" / "exclude").write_text(".gitlab-ci-local/\n.gitlab-ci-local-variables.yml\n"
                                                    "*.egg-info/\n.cache/\n")
    notebooks = work / "notebooks-aside"
    shutil.move(root / "notebooks", notebooks)
    base = commit_all(root, "scaffold")
    git(work, "init", "-q", "--bare", "origin.git")
    git(root, "remote", "add", "origin", str(work / "origin.git"))
    git(root, "push", "-q", "origin", "main")
    git(root, "remote", "set-head", "origin", "main")
    shutil.move(notebooks, root / "notebooks")
    head = commit_all(root, "notebooks")
    return root, base, head


def gitlab_ci_local(root: Path, env: dict[str, str], *args: str, concurrency: int = 1) -> tuple[int, str]:
    done = subprocess.run([str(GCL), "--no-color", "--timestamps", "--shell-isolation",
                           "--concurrency", str(concurrency), *args],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    log = root.parent / "gitlab-ci-local.log"
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ gitlab-ci-local {' '.join(args)}\n{out}\n")
    return done.returncode, out


def report(out: str) -> dict[str, str]:
    """job -> PASS / FAIL from the reports gitlab-ci-local prints (the child's and the parent's;
    a passing child job is named `[trigger job] -> job`, a failing one `job`)."""
    found = re.finditer(r"(?m)^ (PASS|FAIL) +(?:\[ *[\d.]+ \w+\] +)?(?:\[[^]]*\] -> )?(\S.*?)\s*$", out)
    return {m.group(2): m.group(1) for m in found}


def finished_runs(url: str) -> dict[str, list[str]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url, url)
    exps = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in exps]) if exps else []
    out: dict[str, list[str]] = {}
    for run in runs:
        out.setdefault(run.data.tags.get("nbops.notebook", "?"), []).append(run.info.status)
    return out


def test_pipeline_green_then_red(gl_project, server, runner_env):
    root, base, head = gl_project
    started = time.monotonic()
    code, out = gitlab_ci_local(root, runner_env, "--variable", f"CI_COMMIT_BEFORE_SHA={base}")
    jobs = report(out)
    assert code == 0 and jobs == {"plan": "PASS", "notebooks": "PASS",
                                  "run notebooks/example.ipynb": "PASS"}, out[-6000:]
    child = (root / "notebooks-pipeline.yml").read_text()
    assert "run notebooks/example.ipynb" in child and "before_script" in child and "cache" in child
    runs = finished_runs(server)
    assert runs == {"notebooks/example.ipynb": ["FINISHED"]}, (runs, out[-4000:])
    from mlflow.tracking import MlflowClient

    # the registry too: without registry_uri MLflow takes the process-wide one an in-process test set
    assert [m.name for m in MlflowClient(server, server).search_registered_models()] == ["example"]
    green = time.monotonic() - started

    failing_notebook(root)
    broken = commit_all(root, "a broken notebook")
    code, out = gitlab_ci_local(root, runner_env, "--variable", f"CI_COMMIT_BEFORE_SHA={head}")
    jobs = report(out)
    # only the notebook the push changed runs; it fails, and so does the pipeline (the child's
    # report says FAIL; gitlab-ci-local 4.56 does not carry a child's failure to its exit status)
    assert jobs.get("run notebooks/broken.ipynb") == "FAIL", out[-6000:]
    assert "run notebooks/example.ipynb" not in jobs
    assert "deliberately broken" in out
    runs = finished_runs(server)
    assert runs["notebooks/broken.ipynb"] == ["FAILED"] and runs["notebooks/example.ipynb"] == ["FINISHED"]
    assert git(root, "rev-parse", "HEAD") == broken
    print(f"green pipeline {green:.0f} s, red pipeline {time.monotonic() - started - green:.0f} s")


@pytest.mark.parametrize("source, jobs", [
    ("push", ["plan", "notebooks"]),
    ("web", ["plan", "notebooks"]),
    ("merge_request_event", ["review", "notebook-tests"]),
    ("schedule", ["retrain", "promote"]),
])
def test_jobs_by_pipeline_source(gl_project, runner_env, source, jobs):
    """gitlab-ci-local's own evaluation of the rules (`changes` against origin/main included)."""
    root, _, _ = gl_project
    done = subprocess.run([str(GCL), "--list-json", "--variable", f"CI_PIPELINE_SOURCE={source}"],
                          cwd=root, env=runner_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [job["name"] for job in json.loads(done.stdout) if job["when"] != "never"] == jobs


class _Notes(BaseHTTPRequestHandler):
    """GitLab's merge-request notes API, as far as the review job uses it."""

    calls: list[tuple[str, str, dict]] = []

    def _answer(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200 if self.command == "GET" else 201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.calls.append(("GET", self.path, {"token": self.headers.get("PRIVATE-TOKEN")}))
        self._answer({"id": 1, "username": "nbops-bot"} if self.path.endswith("/user") else [])

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append(("POST", self.path, {"token": self.headers.get("PRIVATE-TOKEN"), **body}))
        self._answer({"id": 1, **body})

    def log_message(self, *args) -> None:
        pass


def test_review_note_posted_when_check_fails(gl_project, runner_env):
    """A merge request adding a notebook with a committed output: `nbops check` fails, the note
    (check's findings first, then review.md, naming the head commit by its sha) is still posted,
    then the job fails. In the same run, `notebook-tests`: the project's interpreter runs
    `pytest --nbops` (a bare `pytest` on a shell runner was another Python's: "unrecognized
    arguments: --nbops"), with pytest-xdist, and keeps the failing notebook executed."""
    root, _, head = gl_project
    if not (root / "notebooks" / "broken.ipynb").exists():  # run alone: make the MR's commit here
        failing_notebook(root)
        commit_all(root, "a broken notebook")
    api = ThreadingHTTPServer(("127.0.0.1", 0), _Notes)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    _Notes.calls.clear()
    try:
        code, out = gitlab_ci_local(
            root, runner_env, "review", "notebook-tests",
            "--variable", "CI_PIPELINE_SOURCE=merge_request_event",
            "--variable", f"CI_MERGE_REQUEST_DIFF_BASE_SHA={head}",
            "--variable", f"CI_API_V4_URL=http://127.0.0.1:{api.server_address[1]}/api/v4",
            "--variable", "CI_PROJECT_ID=42", "--variable", "CI_MERGE_REQUEST_IID=7",
            "--variable", "NBOPS_GITLAB_TOKEN=glpat-test")
    finally:
        api.shutdown()
        api.server_close()
    jobs = report(out)
    assert code != 0 and jobs.get("review") == "FAIL", out[-6000:]
    assert "nbops check exited 1" in out and "posted the review note" in out
    posts = [c for c in _Notes.calls if c[0] == "POST"]
    assert len(posts) == 1 and posts[0][1] == "/api/v4/projects/42/merge_requests/7/notes"
    body = posts[0][2]["body"]
    assert posts[0][2]["token"] == "glpat-test"
    assert body.startswith("<!-- nbops-review -->\n**`nbops check` failed (exit 1)**")
    assert "NB001" in body and "notebooks/broken.ipynb" in body.split("NB001")[0] + body
    assert body.index("NB001") < body.index("`notebooks/broken.ipynb` (added)")
    sha = git(root, "rev-parse", "HEAD")
    assert f"→ `{sha}`)" in body and "→ `HEAD`" not in body  # the commit, not "HEAD"

    # notebook-tests: the broken notebook fails, the example passes, both ran in parallel workers
    assert jobs.get("notebook-tests") == "FAIL", out[-6000:]
    assert "unrecognized arguments" not in out
    assert "FAILED notebooks/broken.ipynb::smoke" in out and "PASSED notebooks/example.ipynb::smoke" in out
    assert re.search(r"created: 2/2 workers|\[gw\d\]", out), out[-4000:]
    kept = list((root / ".gitlab-ci-local" / "artifacts" / "notebook-tests").rglob("*.ipynb"))
    executed = [p for p in kept if "deliberately broken" in p.read_text(encoding="utf-8")]
    assert executed, f"no executed broken notebook among the artifacts: {kept}"


DIAMOND = {  # name -> (needs, parameters cell, code): small, a real kernel each
    "prepare": ([], "rows = 10",
                "import uuid, nbops\nnbops.record('rows', rows)\nnbops.record('token', uuid.uuid4().hex)"),
    "train_a": (["prepare"], "factor = 2",
                "import nbops\nfrom nbops import kit\nup = kit.upstream('prepare')\n"
                "nbops.record('score', up.records['rows'] * factor)\nnbops.record('token', up.records['token'])\n"
                "nbops.record('prepare_run', up.run_id)"),
    "train_b": (["prepare"], "factor = 3",
                "import nbops\nfrom nbops import kit\nup = kit.upstream('prepare')\n"
                "nbops.record('score', up.records['rows'] * factor)\nnbops.record('token', up.records['token'])\n"
                "nbops.record('prepare_run', up.run_id)"),
    "evaluate": (["train_a", "train_b"], "k = 1",
                 "import nbops\nfrom nbops import kit\nups = [kit.upstream(n) for n in ('train_a', 'train_b')]\n"
                 "nbops.record('best', max(u.metrics['score'] for u in ups))\n"
                 "nbops.record('read', {u.name: [u.run_id, u.records['score'], u.records['token']] for u in ups})"),
}


def _notebook_runs(url: str) -> dict[str, object]:
    """notebook -> its one run on the server (a notebook run twice fails the test)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url, url)
    runs = [r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
            if r.data.tags.get("nbops.notebook", "").startswith("notebooks/diamond/")]
    by_name: dict[str, list] = {}
    for run in runs:
        by_name.setdefault(Path(run.data.tags["nbops.notebook"]).stem, []).append(run)
    assert all(len(v) == 1 for v in by_name.values()), {k: len(v) for k, v in by_name.items()}
    return {k: v[0] for k, v in by_name.items()}


def _records(url: str, run) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url, url)
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run.info.run_id, "nbops/records.json", tmp)
        return json.loads(Path(path).read_text(encoding="utf-8"))


def test_diamond_pipeline_runs_in_order(gl_project, server, runner_env):
    """A pipeline of notebooks (prepare -> train_a, train_b -> evaluate) pushed to the default
    branch: the child pipeline's four jobs run in the order their `needs:` give, two at a time
    (without `needs:` all four would start together), and each reads the runs its upstreams'
    jobs made in this pipeline (a token prepare drew, run ids, values)."""
    root, _, _ = gl_project
    before = git(root, "rev-parse", "HEAD")
    for name, (needs, params, code) in DIAMOND.items():
        write_notebook(root / "notebooks" / "diamond" / f"{name}.ipynb",
                       [("code", params, ["parameters"]), ("code", code)], nbops={"needs": needs} if needs else None)
    commit_all(root, "a diamond pipeline")
    started = time.monotonic()
    code, out = gitlab_ci_local(root, runner_env, "--variable", f"CI_COMMIT_BEFORE_SHA={before}", concurrency=2)
    elapsed = time.monotonic() - started
    jobs = report(out)
    names = [f"run notebooks/diamond/{n}.ipynb" for n in DIAMOND]
    assert code == 0 and jobs == {"plan": "PASS", "notebooks": "PASS", **dict.fromkeys(names, "PASS")}, out[-6000:]
    child = yaml.safe_load((root / "notebooks-pipeline.yml").read_text())
    assert {n: child[n].get("needs") for n in names} == {names[0]: None, names[1]: [names[0]],
                                                         names[2]: [names[0]], names[3]: names[1:3]}

    runs = _notebook_runs(server)
    assert sorted(runs) == sorted(DIAMOND) and {r.info.status for r in runs.values()} == {"FINISHED"}
    span = {n: (r.info.start_time, r.info.end_time) for n, r in runs.items()}
    order = f"{span} (ms)\n{out[-4000:]}"
    assert span["prepare"][1] <= min(span["train_a"][0], span["train_b"][0]), order
    assert max(span["train_a"][1], span["train_b"][1]) <= span["evaluate"][0], order

    rec = {n: _records(server, r) for n, r in runs.items()}
    token = rec["prepare"]["token"]
    for name, factor in (("train_a", 2), ("train_b", 3)):
        assert rec[name]["prepare_run"] == runs["prepare"].info.run_id
        assert rec[name]["token"] == token and rec[name]["score"] == 10 * factor
    assert rec["evaluate"]["read"] == {"train_a": [runs["train_a"].info.run_id, 20, token],
                                       "train_b": [runs["train_b"].info.run_id, 30, token]}
    assert runs["evaluate"].data.metrics["best"] == 30
    print(f"diamond pipeline {elapsed:.0f} s")
