"""The CI files nbops ships, linted offline: actionlint and the workflow schemas, least privilege."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent
WORKFLOWS = sorted((REPO / "ci" / "github").glob("*.yml"))


def test_github_workflows_pass_actionlint_and_schema():
    done = subprocess.run([str(BIN / "actionlint"), *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_gitlab_pipeline_passes_schema():
    done = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci",
                           str(REPO / "ci" / "gitlab" / ".gitlab-ci.yml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _gitlab() -> dict:
    return yaml.safe_load((REPO / "ci" / "gitlab" / ".gitlab-ci.yml").read_text())


def _scripts(job: dict) -> list[str]:
    return [*job.get("before_script", []), *job.get("script", [])]


def test_gitlab_scripts_parse_as_shell_and_their_python_compiles():
    """Every script block is valid sh/bash and every Python heredoc in it compiles (a typo in the
    note-posting code would only show on a real merge request otherwise)."""
    import re

    pipeline = _gitlab()
    blocks = [s for job in pipeline.values() if isinstance(job, dict) for s in _scripts(job)]
    blocks += pipeline["default"]["before_script"]
    heredocs = 0
    for block in blocks:
        done = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
        assert done.returncode == 0, (block[:200], done.stderr)
        for code in re.findall(r"<<'PY'\n(.*?)\nPY\n", block, re.S):
            compile(code, "heredoc", "exec")
            heredocs += 1
    assert heredocs == 2  # the review note, the approval issue


def test_gitlab_review_posts_its_note_before_failing_on_check():
    script = _gitlab()["review"]["script"][0]
    lines = [line.strip() for line in script.splitlines()]
    check = lines.index("nbops check > check.txt 2>&1 || check=$?")  # recorded, not fatal
    review = next(i for i, line in enumerate(lines) if line.startswith("nbops review "))
    opener = "urllib.request.urlopen(urllib.request.Request(url"
    post = next(i for i, line in enumerate(lines) if line.startswith(opener))
    fail = lines.index('if [ "$check" != 0 ]; then exit "$check"; fi')
    assert check < review < post < fail


def test_gitlab_jobs_by_pipeline_source():
    """Merge requests: review and pytest --nbops; the default branch: plan and the child pipeline;
    schedules: retrain (and its manual promote), nothing else."""
    pipeline = _gitlab()
    rules = {name: job["rules"] for name, job in pipeline.items() if isinstance(job, dict) and "rules" in job}
    mr = '$CI_PIPELINE_SOURCE == "merge_request_event"'
    schedule = '$CI_PIPELINE_SOURCE == "schedule"'
    assert [r["if"] for r in rules["review"]] == [mr] == [r["if"] for r in rules["notebook-tests"]]
    tests = "\n".join(pipeline["notebook-tests"]["script"])
    # the project's interpreter, never a bare `pytest` (a shell runner's may be another Python's)
    assert "python -m pytest --nbops $workers --basetemp=notebook-tests" in tests
    assert not any(line.lstrip().startswith("pytest") for line in tests.splitlines())
    assert pipeline["notebook-tests"]["artifacts"]["paths"] == ["notebook-tests/"]
    assert pipeline["notebook-tests"]["artifacts"]["when"] == "always"
    assert '--head "$head_sha"' in "\n".join(pipeline["review"]["script"])  # the note names the sha
    for name in ("plan", "notebooks"):  # pushes and "Run pipeline" only: not schedules, not MRs
        assert [r["if"] for r in rules[name]] == [
            '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && ($CI_PIPELINE_SOURCE == "push" || '
            '$CI_PIPELINE_SOURCE == "web")']
    assert rules["retrain"] == [{"if": schedule}]
    assert rules["promote"] == [{"if": schedule, "when": "manual", "allow_failure": True}]
    assert 'nbops monitor "$NBOPS_RETRAIN_MODEL@champion"' in pipeline["retrain"]["script"][0]
    assert "--retrain" in pipeline["retrain"]["script"][0]
    assert pipeline["retrain"]["artifacts"]["reports"]["dotenv"] == "retrain.env"


def test_gitlab_child_pipeline_gets_the_project_variables():
    """The trigger passes none of this file's variables (they would override the project's
    CI/CD variables NBOPS_SPEC / NBOPS_PIP_ARGS in the child), and the file defines neither."""
    pipeline = _gitlab()
    assert pipeline["notebooks"]["inherit"] == {"variables": False}
    assert pipeline["notebooks"]["trigger"]["include"] == [{"artifact": "notebooks-pipeline.yml", "job": "plan"}]
    assert pipeline["notebooks"]["trigger"]["strategy"] == "depend"
    assert not {"NBOPS_SPEC", "NBOPS_PIP_ARGS", "MLFLOW_TRACKING_URI"} & set(pipeline["variables"])
    from nbops.ci.plan import GITLAB_INSTALL

    assert pipeline["default"]["before_script"] == [GITLAB_INSTALL]  # the child jobs' install step too
    assert pipeline["default"]["cache"]["paths"] == [".cache/pip"]
    assert pipeline["variables"]["PIP_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/pip"


class _GitLabAPI:
    """GitLab's notes and issues endpoints, as far as the pipeline's Python uses them, recording
    every request (a local stand-in: the scripts are the thing under test)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.notes: list[dict] = []
        self.issues: list[dict] = []
        self.requests: list[tuple[str, str, str | None]] = []
        self.users = {"glpat-x": 7}  # token -> its user's id (a project access token's bot user)
        self.per_page = 100
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, body: object, status: int = 200, next_page: str = "") -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Next-Page", next_page)
                self.end_headers()
                self.wfile.write(data)

            def _me(self) -> int:
                return api.users[self.headers["PRIVATE-TOKEN"]]

            def _body(self) -> dict:
                return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

            def _record(self) -> None:
                api.requests.append((self.command, self.path, self.headers.get("PRIVATE-TOKEN")))

            def do_GET(self) -> None:  # noqa: N802
                from urllib.parse import parse_qs, urlsplit

                self._record()
                if self.path == "/api/v4/user":
                    self._send({"id": self._me(), "username": "project_42_bot"})
                elif "/notes" in self.path:  # oldest first, `per_page` a page, X-Next-Page
                    page = int(parse_qs(urlsplit(self.path).query).get("page", ["1"])[0])
                    start = (page - 1) * api.per_page
                    more = len(api.notes) > start + api.per_page
                    self._send(api.notes[start:start + api.per_page], next_page=str(page + 1) if more else "")
                else:
                    self._send([i for i in api.issues if i["state"] == "opened"])

            def do_POST(self) -> None:  # noqa: N802
                self._record()
                body = self._body()
                if self.path.endswith("/notes"):
                    api.notes.append({"id": 100 + len(api.notes), "body": body["body"], "author": {"id": self._me()},
                                      "created_at": f"2026-01-01T00:{len(api.notes):02d}:00.000Z"})
                    self._send(api.notes[-1], 201)
                else:
                    api.issues.append({"iid": len(api.issues) + 1, "state": "opened", **body})
                    self._send(api.issues[-1], 201)

            def do_PUT(self) -> None:  # noqa: N802
                self._record()
                note = next(n for n in api.notes if self.path.endswith(f"/notes/{n['id']}"))
                if note["author"]["id"] != self._me():  # GitLab: only the author edits a note
                    self._send({"message": "403 Forbidden"}, 403)
                    return
                note["body"] = self._body()["body"]
                self._send(note)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v4"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _gitlab_python(job: str) -> str:
    import re

    return re.findall(r"<<'PY'\n(.*?)\nPY\n", _gitlab()[job]["script"][0], re.S)[0]


def _run_python(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    import os

    done = subprocess.run([sys.executable, "-"], input=code, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def test_gitlab_review_note_created_then_updated_with_check_findings_first(tmp_path):
    api = _GitLabAPI()
    env = {"CI_API_V4_URL": api.url, "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "7",
           "NBOPS_GITLAB_TOKEN": "glpat-x", "CHECK_EXIT": "0"}
    (tmp_path / "review").mkdir()
    review = "<!-- nbops-review -->\n## Notebook review\n\n1 notebook changed\n"
    (tmp_path / "review" / "review.md").write_text(review)
    code = _gitlab_python("review")
    try:
        assert "posted the review note" in _run_python(code, tmp_path, env).stdout
        assert [(n["id"], n["body"]) for n in api.notes] == [(100, review)]
        # check fails on the next push: the same note, updated, check's findings first in a fence
        # longer than any backtick run in them
        (tmp_path / "check.txt").write_text("notebooks/a.ipynb: NB005 ```token``` looks like a secret\n")
        out = _run_python(code, tmp_path, {**env, "CHECK_EXIT": "1"}).stdout
        assert "updated the review note" in out and len(api.notes) == 1
        body = api.notes[0]["body"]
        assert body.startswith("<!-- nbops-review -->\n**`nbops check` failed (exit 1)**")
        assert "\n````\nnotebooks/a.ipynb: NB005 ```token``` looks like a secret\n````\n" in body
        assert body.endswith("## Notebook review\n\n1 notebook changed\n") and body.count("<!-- nbops-review -->") == 1
        assert [r[:2] for r in api.requests] == [
            ("GET", "/api/v4/user"), ("GET", "/api/v4/projects/42/merge_requests/7/notes?per_page=100&page=1"),
            ("POST", "/api/v4/projects/42/merge_requests/7/notes"),
            ("GET", "/api/v4/user"), ("GET", "/api/v4/projects/42/merge_requests/7/notes?per_page=100&page=1"),
            ("PUT", "/api/v4/projects/42/merge_requests/7/notes/100")]
        assert {r[2] for r in api.requests} == {"glpat-x"}
        # review.md missing (nbops review failed): a note still says so
        (tmp_path / "review" / "review.md").unlink()
        _run_python(code, tmp_path, {**env, "CHECK_EXIT": "1"})
        assert "wrote no review.md" in api.notes[0]["body"] and "NB005" in api.notes[0]["body"]
    finally:
        api.close()


def _note(ident: int, author: int, body: str, minute: int) -> dict:
    return {"id": ident, "author": {"id": author}, "body": body, "created_at": f"2025-12-31T23:{minute:02d}:00.000Z"}


def test_gitlab_review_note_leaves_other_participants_notes_alone(tmp_path):
    """Issue 22: a participant's note that starts with the marker was taken as the job's own, and
    the PUT the token may not make failed the review job on every push. Only the token's user's
    notes are candidates; with none, a new note is posted and the other one is untouched."""
    api = _GitLabAPI()
    env = {"CI_API_V4_URL": api.url, "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "7",
           "NBOPS_GITLAB_TOKEN": "glpat-x", "CHECK_EXIT": "0"}
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / "review.md").write_text("<!-- nbops-review -->\n## Notebook review\n")
    theirs = _note(1, 55, "<!-- nbops-review -->\nI copied the marker", 1)
    api.notes = [dict(theirs), _note(2, 55, "LGTM", 2)]
    code = _gitlab_python("review")
    try:
        assert "posted the review note" in _run_python(code, tmp_path, env).stdout
        assert api.notes[0] == theirs and "PUT" not in [r[0] for r in api.requests]
        assert api.notes[-1]["author"] == {"id": 7} and "## Notebook review" in api.notes[-1]["body"]
        # the next push updates the job's own note, still not theirs
        assert "updated the review note" in _run_python(code, tmp_path, env).stdout
        assert api.notes[0] == theirs and len(api.notes) == 3
        note = f"/api/v4/projects/42/merge_requests/7/notes/{api.notes[-1]['id']}"
        assert [r[1] for r in api.requests if r[0] == "PUT"] == [note]
    finally:
        api.close()


def test_gitlab_review_note_updates_the_newest_own_note_on_any_page(tmp_path):
    api = _GitLabAPI()
    api.per_page = 2  # three pages: the newest own note is on the last
    env = {"CI_API_V4_URL": api.url, "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "7",
           "NBOPS_GITLAB_TOKEN": "glpat-x", "CHECK_EXIT": "0"}
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / "review.md").write_text("<!-- nbops-review -->\nnew\n")
    api.notes = [_note(1, 7, "<!-- nbops-review -->\nold", 1), _note(2, 55, "<!-- nbops-review -->\ntheirs", 2),
                 _note(3, 7, "not a review", 3), _note(4, 55, "ok", 4),
                 _note(5, 7, "<!-- nbops-review -->\nolder push", 5)]
    try:
        assert "updated the review note" in _run_python(_gitlab_python("review"), tmp_path, env).stdout
        assert [n["body"] for n in api.notes] == ["<!-- nbops-review -->\nold", "<!-- nbops-review -->\ntheirs",
                                                  "not a review", "ok", "<!-- nbops-review -->\nnew\n"]
        pages = [r[1].rsplit("page=", 1)[1] for r in api.requests if "/notes?" in r[1]]
        assert pages == ["1", "2", "3"]
    finally:
        api.close()


def test_gitlab_approval_issue_is_opened_once(tmp_path):
    api = _GitLabAPI()
    env = {"CI_API_V4_URL": api.url, "CI_PROJECT_ID": "42", "NBOPS_GITLAB_TOKEN": "glpat-x",
           "NBOPS_RETRAIN_MODEL": "churn", "NBOPS_CHALLENGER": "4",
           "CI_PIPELINE_URL": "https://gitlab.example.com/g/p/-/pipelines/9"}
    code = _gitlab_python("retrain")
    try:
        assert "opened issue #1: Approve churn v4 as champion" in _run_python(code, tmp_path, env).stdout
        assert "already asks" in _run_python(code, tmp_path, env).stdout
        assert len(api.issues) == 1
        issue = api.issues[0]
        assert issue["labels"] == "nbops-approval"
        assert "nbops models approve churn 4 --by" in issue["description"]
        assert "nbops models promote churn 4 --alias champion" in issue["description"]
        assert "pipelines/9" in issue["description"]
        assert api.requests[0][1].startswith("/api/v4/projects/42/issues?state=opened&labels=nbops-approval")
    finally:
        api.close()


def _workflow(name: str) -> dict:
    wf = yaml.safe_load((REPO / "ci" / "github" / name).read_text())
    wf["on"] = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    return wf


def _steps(wf: dict) -> list[tuple[str, dict]]:
    return [(job_id, step) for job_id, job in wf["jobs"].items() for step in job["steps"]]


SAME_REPO = "github.event.pull_request.head.repo.full_name == github.repository"


def test_review_workflow_is_least_privilege():
    """The pull_request workflow writes nowhere and gives a fork's code no secret: only the
    metrics job reads the tracking secrets, and it runs for branches of this repository only."""
    wf = _workflow("review.yml")
    assert "pull_request" in wf["on"] and "pull_request_target" not in wf["on"]
    assert wf["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in wf["jobs"].values())
    assert all(job["runs-on"] == "ubuntu-latest" for job in wf["jobs"].values())
    with_secrets = {job_id for job_id, job in wf["jobs"].items() if "secrets." in yaml.safe_dump(job)}
    assert with_secrets == {"metrics"} and wf["jobs"]["metrics"]["if"] == SAME_REPO
    runs = {job_id: " ".join(step.get("run", "") for step in job["steps"]) for job_id, job in wf["jobs"].items()}
    assert "nbops review --run" in runs["metrics"] and "--run" not in runs["review"]
    # the project's interpreter (a bare `pytest` may be another Python's), in parallel
    assert "python -m pytest --nbops -n auto" in runs["notebook-tests"] and "pytest-xdist" in runs["notebook-tests"]
    # the reviewed commit is the pull request's head, never GitHub's merge commit (HEAD)
    assert "--head HEAD" not in runs["review"] + runs["metrics"]
    uploads = [step["with"]["name"] for _, step in _steps(wf) if "upload-artifact" in step.get("uses", "")]
    assert uploads == ["notebook-review", "notebook-review-metrics", "executed-notebooks"]


def test_comment_workflow_posts_without_running_pr_code():
    """workflow_run of the review: it may write to pull requests, so it checks out nothing and runs
    no shell step; it reads the artifacts of the run that finished and names the review's workflow."""
    wf = _workflow("review-comment.yml")
    assert wf["on"] == {"workflow_run": {"workflows": [_workflow("review.yml")["name"]], "types": ["completed"]}}
    assert wf["permissions"] == {"actions": "read", "pull-requests": "write"}
    steps = [step for _, step in _steps(wf)]
    assert not any("checkout" in step.get("uses", "") or "run" in step for step in steps)
    download = next(step for step in steps if "download-artifact" in step.get("uses", ""))
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    script = next(step for step in steps if "github-script" in step.get("uses", ""))["with"]["script"]
    # posts only to the pull request whose head is the commit reviewed, one comment updated in place
    assert "pr.head.sha !== process.env.HEAD_SHA" in script and "updateComment" in script


def test_every_job_caches_pip_and_installs_the_project():
    for path in WORKFLOWS:
        wf = _workflow(path.name)
        for job_id, step in _steps(wf):
            if "setup-python" in step.get("uses", ""):
                assert step["with"].get("cache") == "pip", f"{path.name} {job_id}"
            if step.get("id") == "install":
                install = "python -m pip install $NBOPS_PIP_ARGS ${NBOPS_SPEC:+\"$NBOPS_SPEC\"} -e ."
                assert install in step["run"], f"{path.name} {job_id}"


def test_tracking_jobs_require_a_tracking_server():
    """Every workflow that reads MLFLOW_TRACKING_URI from a secret makes an empty secret an error."""
    for name in ("notebooks.yml", "retrain.yml"):
        assert _workflow(name)["env"]["NBOPS_REQUIRE_TRACKING_SERVER"] == "true"
    assert _workflow("review.yml")["jobs"]["metrics"]["env"]["NBOPS_REQUIRE_TRACKING_SERVER"] == "true"


def test_retrain_workflow_is_scheduled_and_asks_for_approval():
    wf = _workflow("retrain.yml")
    assert "schedule" in wf["on"] and "workflow_dispatch" in wf["on"]
    assert wf["permissions"] == {"contents": "read"}
    run = next(step["run"] for _, step in _steps(wf) if step.get("id") == "retrain")
    assert 'nbops monitor "$MODEL@champion"' in run and "--retrain" in run
    approval = wf["jobs"]["request-approval"]
    assert approval["permissions"] == {"issues": "write"}
    assert approval["if"] == "needs.monitor.outputs.challenger != ''"
    promote = wf["jobs"]["promote"]
    assert promote["environment"] == "${{ vars.NBOPS_APPROVAL_ENVIRONMENT }}"
    assert "nbops models approve" in promote["steps"][-1]["run"]


def test_init_ships_every_github_workflow():
    from nbops.ci.init import CI_FILES

    assert sorted(Path(src).name for src in CI_FILES["github"].values()) == [p.name for p in WORKFLOWS]


# The github-script steps run in node (as actions/github-script runs them: an async function of
# require, github, context, core) against a stand-in for GitHub's REST API that records the calls.
GITHUB_SCRIPT_HARNESS = r"""
const fs = require('fs');
const state = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const calls = [];
const record = (name) => async (args) => { calls.push([name, args]); return {data: {}}; };
const github = {
  rest: {
    pulls: {get: async (args) => { calls.push(['pulls.get', args]); return {data: {head: {sha: state.head}}}; }},
    issues: {listComments: 'issues.listComments', listForRepo: 'issues.listForRepo',
             updateComment: record('issues.updateComment'), createComment: record('issues.createComment'),
             create: record('issues.create')},
  },
  paginate: async (what, args) => { calls.push([what, args]); return state.listed; },
};
const context = {repo: {owner: 'team', repo: 'churn'}};
const core = {info: (m) => calls.push(['info', m]), setFailed: (m) => calls.push(['failed', m])};
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction('require', 'github', 'context', 'core', state.script)(require, github, context, core)
  .then(() => console.log(JSON.stringify(calls)), (e) => { console.error(e); process.exit(1); });
"""


def github_script(workflow: str, cwd: Path, env: dict[str, str], head: str = "", listed=()) -> list:
    import json
    import os
    import shutil

    node = shutil.which("node")
    assert node, "node (Debian's nodejs) runs the workflows' github-script steps in this test"
    wf = _workflow(workflow)
    script = next(step["with"]["script"] for _, step in _steps(wf) if "github-script" in step.get("uses", ""))
    (cwd / "harness.js").write_text(GITHUB_SCRIPT_HARNESS)
    (cwd / "state.json").write_text(json.dumps({"script": script, "head": head, "listed": list(listed)}))
    done = subprocess.run([node, "harness.js", "state.json"], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _artifacts(root: Path, number: str = "7", check: str = "success", metrics: str | None = None) -> None:
    review = root / "artifacts" / "notebook-review"
    (review / "review").mkdir(parents=True)
    (review / "review" / "review.md").write_text("<!-- nbops-review -->\n## plain review\n")
    (review / "pr").mkdir()
    (review / "pr" / "number").write_text(number + "\n")
    (review / "pr" / "check").write_text(check + "\n")
    if metrics is not None:
        (root / "artifacts" / "notebook-review-metrics").mkdir(parents=True)
        (root / "artifacts" / "notebook-review-metrics" / "review.md").write_text(metrics)


ENV = {"HEAD_SHA": "abc123", "RUN_URL": "https://example.invalid/run/1"}
BOT = {"login": "github-actions[bot]", "type": "Bot", "id": 41898282}
ALICE = {"login": "alice", "type": "User", "id": 7}


def test_comment_script_creates_then_updates_the_one_comment(tmp_path):
    _artifacts(tmp_path)
    calls = github_script("review-comment.yml", tmp_path, ENV, head="abc123")
    assert calls[0] == ["pulls.get", {"owner": "team", "repo": "churn", "pull_number": 7}]
    [create] = [c for c in calls if c[0] == "issues.createComment"]
    assert create[1]["issue_number"] == 7 and create[1]["body"] == "<!-- nbops-review -->\n## plain review\n"
    # a later push: the metrics review is preferred, and the comment with the marker is updated
    listed = [{"id": 1, "body": "LGTM", "user": ALICE}, {"id": 42, "body": "<!-- nbops-review -->\nold", "user": BOT}]
    (tmp_path / "artifacts").rename(tmp_path / "old")
    _artifacts(tmp_path, metrics="<!-- nbops-review -->\n## with metrics\n", check="failure")
    calls = github_script("review-comment.yml", tmp_path, ENV, head="abc123", listed=listed)
    [update] = [c for c in calls if c[0] == "issues.updateComment"]
    assert update[1]["comment_id"] == 42 and not [c for c in calls if c[0] == "issues.createComment"]
    body = update[1]["body"]
    assert body.startswith("<!-- nbops-review -->\n**`nbops check` found problems**") and "## with metrics" in body


def test_comment_script_posts_only_to_the_reviewed_head(tmp_path):
    _artifacts(tmp_path)
    calls = github_script("review-comment.yml", tmp_path, ENV, head="newer")  # the PR moved on
    assert not [c for c in calls if c[0].startswith("issues.")] and "has moved on" in calls[-1][1]
    for bad in ("", "7; rm -rf /", "-3"):
        (tmp_path / "artifacts" / "notebook-review" / "pr" / "number").write_text(bad)
        calls = github_script("review-comment.yml", tmp_path, ENV, head="abc123")
        assert calls == [["info", "the review artifact names no pull request: nothing to post"]]


def test_comment_script_cuts_a_review_too_long_for_a_comment(tmp_path):
    _artifacts(tmp_path, metrics="<!-- nbops-review -->\n" + "x" * 70_000)
    [create] = [c for c in github_script("review-comment.yml", tmp_path, ENV, head="abc123")
                if c[0] == "issues.createComment"]
    assert len(create[1]["body"]) < 65_536 and "cut here" in create[1]["body"]


def test_retrain_approval_issue_is_opened_once(tmp_path):
    env = {"MODEL": "churn", "VERSION": "3", "RUN_URL": "https://example.invalid/run/2"}
    calls = github_script("retrain.yml", tmp_path, env)
    [create] = [c for c in calls if c[0] == "issues.create"]
    assert create[1]["title"] == "Approve churn v3 as champion" and create[1]["labels"] == ["nbops-approval"]
    assert "nbops models approve churn 3" in create[1]["body"]
    calls = github_script("retrain.yml", tmp_path, env, listed=[{"title": "Approve churn v3 as champion"}])
    assert not [c for c in calls if c[0] == "issues.create"]


def _comment(ident: int, user: dict, body: str, when: str) -> dict:
    return {"id": ident, "user": user, "body": body, "created_at": f"2026-01-0{when}T00:00:00Z"}


@pytest.mark.parametrize("listed", [
    [_comment(5, ALICE, "<!-- nbops-review -->\nmine now", "1")],  # a person's comment with the marker
    [_comment(5, {"login": "github-actions[bot]", "type": "User"}, "<!-- nbops-review -->\nx", "1")],
    [_comment(5, {"login": "renovate[bot]", "type": "Bot"}, "<!-- nbops-review -->\nx", "1")],
    [_comment(5, BOT, "a bot comment without the marker <!-- nbops-review -->", "1")],
    [{"id": 5, "body": "<!-- nbops-review -->\nno author"}],
])
def test_comment_script_never_updates_a_comment_it_did_not_write(tmp_path, listed):
    """Issue 22: any comment starting with the marker was updated, whoever wrote it. The job's own
    token writes as github-actions[bot] (type Bot): nothing else is its to update; it posts anew."""
    _artifacts(tmp_path)
    calls = github_script("review-comment.yml", tmp_path, ENV, head="abc123", listed=listed)
    assert not [c for c in calls if c[0] == "issues.updateComment"]
    [create] = [c for c in calls if c[0] == "issues.createComment"]
    assert create[1]["body"] == "<!-- nbops-review -->\n## plain review\n"


def test_comment_script_updates_the_newest_of_its_own_comments(tmp_path):
    _artifacts(tmp_path)
    listed = [_comment(3, BOT, "<!-- nbops-review -->\nfirst", "1"),
              _comment(9, ALICE, "<!-- nbops-review -->\nx", "4"),
              _comment(4, BOT, "<!-- nbops-review -->\nsecond", "3"), _comment(8, BOT, "thanks!", "5"),
              _comment(2, BOT, "<!-- nbops-review -->\nsame time, lower id", "3")]
    calls = github_script("review-comment.yml", tmp_path, ENV, head="abc123", listed=listed)
    [update] = [c for c in calls if c[0] == "issues.updateComment"]
    assert update[1]["comment_id"] == 4 and not [c for c in calls if c[0] == "issues.createComment"]


# --- supply chain and secrets: pinned actions, secrets only where a step needs them ------------

def test_every_action_is_pinned_to_a_commit_sha():
    """A tag can be moved to other code; a commit cannot. Each `uses:` names a 40-hex commit,
    with the release it is in a comment (`# v5.1.0`) for people and for update bots."""
    import re

    pinned = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
    seen = 0
    for path in WORKFLOWS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"^\s*(?:-\s+)?uses:", line):
                assert pinned.match(line), f"{path.name}:{number}: {line.strip()}"
                seen += 1
        for _, step in _steps(_workflow(path.name)):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), (path.name, step["uses"])
    assert seen >= 15


def test_secrets_reach_only_the_steps_that_use_them():
    """No secret in a workflow's or a job's `env` (every step of it, actions included, would see
    it): a secret is set on the step that needs it. The tracking secrets go to the steps that run
    nbops against the server, and nowhere else."""
    import re

    tracking = {"notebooks.yml": {("plan", "plan"), ("run", "run")},
                "retrain.yml": {("monitor", "retrain"), ("promote", "promote")},
                "review.yml": {("metrics", "review-run")}, "review-comment.yml": set()}
    assert set(tracking) == {p.name for p in WORKFLOWS}
    for path in WORKFLOWS:
        wf = _workflow(path.name)
        assert "secrets." not in yaml.safe_dump(wf.get("env") or {}), f"{path.name}: workflow env"
        for job_id, job in wf["jobs"].items():
            assert "secrets." not in yaml.safe_dump(job.get("env") or {}), f"{path.name}: {job_id} env"
        with_secrets = {(job_id, step.get("id")) for job_id, step in _steps(wf)
                        if "secrets." in yaml.safe_dump(step.get("env") or {})}
        assert with_secrets == tracking[path.name], path.name
        for job_id, step in _steps(wf):
            assert "secrets." not in yaml.safe_dump(step.get("with") or {}), (path.name, job_id)
            if (job_id, step.get("id")) in tracking[path.name]:
                assert {k for k, v in step["env"].items() if re.search(r"secrets\.", str(v))} == {
                    "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
