"""`nbops lab`'s pure parts: the server configuration, the templates it serves, the command a
notebook job runs, and how a lab kernel names its notebook (tests/e2e/test_lab.py drives it all)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbops import _kernel
from nbops.core.config import Settings
from nbops.lab.config import artifact_location, kernel_env, mlflow_command, server_config
from tests.conftest import commit_all, git, write_notebook


def _settings(root: Path, **values) -> Settings:
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    return Settings(root=root, **values)


def test_server_config_binds_localhost_in_the_project_with_its_store(tmp_path):
    settings = _settings(tmp_path)
    config = server_config(settings, 9999, open_browser=False)
    server = config["ServerApp"]
    assert server["ip"] == "127.0.0.1" and server["port"] == 9999 and server["port_retries"] == 0
    assert server["root_dir"] == str(tmp_path.resolve()) and server["open_browser"] is False
    assert "token" not in server  # Jupyter's own random token (or JUPYTER_TOKEN)
    assert config["FileContentsManager"]["preferred_dir"] == "notebooks"
    env = config["LabKernelManager"]["nbops_env"]
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert env["NBOPS_PROJECT_ROOT"] == str(tmp_path.resolve())
    assert env["NBOPS_ARTIFACT_LOCATION"] == (tmp_path / "mlruns").resolve().as_uri()
    assert "ServerProxy" not in config  # the UI needs its socket (launch makes the folder)
    config = server_config(settings, 9999, False, "/tmp/a b/mlflow.sock")
    mlflow = config["ServerProxy"]["servers"]["mlflow"]
    # started by the lab itself at once, on a Unix socket (no TCP port), proxied by Jupyter
    assert "command" not in mlflow and mlflow["unix_socket"] == "/tmp/a b/mlflow.sock"
    assert mlflow["new_browser_tab"] is False
    assert mlflow["launcher_entry"]["path_info"] == "nbops/mlflow"  # the "starting" page
    assert config["NbopsLab"]["mlflow_socket"] == "/tmp/a b/mlflow.sock"
    command = mlflow_command(settings, "/tmp/a b/mlflow.sock")
    assert command[command.index("--backend-store-uri") + 1] == env["MLFLOW_TRACKING_URI"]
    assert "--uds '/tmp/a b/mlflow.sock'" in command and "--workers" in command  # as shlex splits it
    assert config["NbopsLab"]["templates"][-1].endswith("templates")  # the shipped ones
    assert config["SchedulerApp"]["db_url"].endswith(".nbops/lab/scheduler.sqlite")
    assert server_config(settings, None, True)["ServerApp"].get("port") is None
    # a browser the lab starts is opened without the lab's id (it would end with the lab)
    assert "browser" not in server
    assert server_config(settings, None, True)["ServerApp"]["browser"].endswith(
        "-m nbops.lab.processes --browse %s")


def test_a_tracking_server_is_not_started_again(tmp_path):
    settings = _settings(tmp_path, tracking_uri="http://mlflow.example:5000")
    assert mlflow_command(settings) == [] and artifact_location(settings) == ""
    assert "ServerProxy" not in server_config(settings, None, False)
    assert kernel_env(settings)["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"


def test_a_taken_port_is_a_one_line_error(tmp_path):
    import socket

    from nbops.core.errors import ConfigError
    from nbops.lab.config import check_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is not free"):
            check_port(port)
    check_port(port)  # free again


def test_the_new_notebook_dialog_makes_what_nbops_new_makes(project):
    """The lab's endpoint behind "New experiment": notebooks/NAME.ipynb on disk at once, as
    `nbops new` makes it (issue 23: the template dialog opened an empty Untitled.ipynb)."""
    from nbops.core.errors import NotebookError
    from nbops.lab.handlers import new

    tpl = write_notebook(project / "templates" / "clf.ipynb", [("code", "C = 1.0", ["parameters"]), ("code", "C")],
                         nbops={"model": {"name": "classifier"}})
    data = json.loads(tpl.read_text())
    data["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1.0\n"}]
    tpl.write_text(json.dumps(data))
    assert new(project, "clf", "churn_v2.ipynb".removesuffix(".ipynb")) == "notebooks/churn_v2.ipynb"
    made = json.loads((project / "notebooks" / "churn_v2.ipynb").read_text())
    assert made["metadata"]["nbops"]["template"] == "clf"
    assert made["metadata"]["nbops"]["model"]["name"] == "churn-v2"
    assert made["cells"][0]["metadata"]["tags"] == ["parameters"]
    assert made["cells"][1]["outputs"] == []
    with pytest.raises(NotebookError, match="already exists"):
        new(project, "clf", "churn_v2")
    with pytest.raises(NotebookError, match="bad notebook name"):
        new(project, "clf", "../escape")
    with pytest.raises(NotebookError, match="no template named 'nope'"):
        new(project, "nope", "x")
    with pytest.raises(NotebookError, match="no template named"):  # a path is not a template here
        new(project, str(tpl), "x")
    assert not (project / "notebooks" / "x.ipynb").exists()


def test_the_job_form_is_prefilled_with_values_nbops_run_reads_back(project):
    """Each parameter's default as the text `-p NAME=TEXT` turns back into the same value; an
    expression is left to the notebook; a path outside the project is refused."""
    from nbops.core.errors import NotebookError
    from nbops.lab.handlers import parameters
    from nbops.notebook.document import load
    from nbops.notebook.params import resolve

    source = ('model = "svm"  # choices: svm, forest\nC = 1.0\nn = 3\nflag = False\nsizes = [1, 2]\n'
              'opts = {"a": 1}\nnothing = None\nempty = ""\nwhere = str(1)\n')
    nb = write_notebook(project / "notebooks" / "a.ipynb", [("code", source, ["parameters"])])
    found = parameters(project, "notebooks/a.ipynb")
    assert [p["name"] for p in found] == ["model", "C", "n", "flag", "sizes", "opts", "nothing", "empty"]
    assert found[0] == {"name": "model", "value": "svm", "choices": ["svm", "forest"], "help": "choices: svm, forest"}
    typed = resolve(load(nb), {p["name"]: p["value"] for p in found})
    defaults = {p.name: p.default for p in load(nb).parameters if p.type != "expr"}
    assert typed == defaults and type(typed["C"]) is float  # the defaults, read back
    with pytest.raises(NotebookError, match="no such notebook"):
        parameters(project, "../outside.ipynb")


def test_the_model_is_named_after_the_notebook_as_nbops_new_does(tmp_path):
    from nbops.lab.extension import as_new_notebook, model_namer

    tpl = write_notebook(tmp_path / "tpl" / "clf.ipynb", [("code", "C = 1.0", ["parameters"])],
                         nbops={"model": {"name": "classifier", "gates": ["accuracy >= 0.8"]}})
    hook = model_namer([str(tmp_path / "tpl")])

    def saved(path, name="classifier"):
        content = as_new_notebook(tpl)
        content["metadata"]["nbops"]["model"]["name"] = name
        model = {"type": "notebook", "content": content}
        hook(model=model, path=path, contents_manager=None)
        return model["content"]["metadata"]["nbops"]["model"]["name"]

    assert saved("notebooks/churn_v2.ipynb") == "churn-v2"
    assert saved("notebooks/Untitled1.ipynb") == "classifier"  # not named yet
    assert saved("notebooks/churn.ipynb", name="my-own") == "my-own"  # the user's choice stays
    hook(model={"type": "file", "content": "text"}, path="a.txt")  # anything else: untouched


def test_a_notebook_job_is_nbops_run_with_its_parameters():
    from nbops.lab.jobs import NbopsExecutionManager, nbops_command

    cmd = nbops_command("notebooks/a.ipynb", {"C": "0.5", "model": "svm"}, "/tmp/out")
    assert cmd[1:5] == ["-m", "nbops", "run", "notebooks/a.ipynb"]
    assert "--with-needs" in cmd  # a pipeline notebook's job is its whole pipeline, one job
    assert cmd[cmd.index("--output-dir") + 1] == "/tmp/out"
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "-p"] == ["C=0.5", "model=svm"]
    features = NbopsExecutionManager.supported_features(NbopsExecutionManager)
    assert features["parameters"] and features["job_definition"] and not features["tags"]


@pytest.mark.parametrize(("env", "session", "expected"), [
    ({"NBOPS_PROJECT_ROOT": "/p", "JPY_SESSION_NAME": "/p/notebooks/a.ipynb"}, None,
     ("/p", "notebooks/a.ipynb")),
    ({"NBOPS_PROJECT_ROOT": "/p", "JPY_SESSION_NAME": "/p/notebooks/Untitled.ipynb"},
     "notebooks/churn.ipynb", ("/p", "notebooks/churn.ipynb")),  # renamed since the start
    ({"NBOPS_PROJECT_ROOT": "/p", "JPY_SESSION_NAME": "/elsewhere/b.ipynb"}, None, ("/p", "b.ipynb")),
    ({"NBOPS_PROJECT_ROOT": "/p", "JPY_SESSION_NAME": "/p/a.ipynb", "MLFLOW_RUN_ID": "r"}, None, None),
    ({"JPY_SESSION_NAME": "/p/a.ipynb"}, None, None),  # not a kernel of nbops lab
    ({"NBOPS_PROJECT_ROOT": "/p"}, None, None),
])
def test_a_lab_kernel_names_its_notebook_relative_to_the_project(env, session, expected):
    assert _kernel.lab_notebook(env, session_path=session) == expected


def test_the_dirty_flag_is_honest(project):
    nb = write_notebook(project / "notebooks" / "a.ipynb", [("code", "x = 1")])
    tags = _kernel.git_tags(str(project), "notebooks/a.ipynb")
    assert tags["nbops.git_dirty"] == "true"  # never committed
    assert tags["nbops.git_sha"] == git(project, "rev-parse", "HEAD")
    commit_all(project)
    assert _kernel.git_tags(str(project), "notebooks/a.ipynb")["nbops.git_dirty"] == "false"
    nb.write_text(nb.read_text().replace("x = 1", "x = 2"))
    assert _kernel.git_tags(str(project), "notebooks/a.ipynb")["nbops.git_dirty"] == "true"


def test_no_lab_url_means_no_request():
    assert _kernel.session_path({"NBOPS_PROJECT_ROOT": "/p"}) is None


def test_the_new_notebook_dialog_preselects_classification(project):
    """The dialog preselects the first template: the general one, then A-Z (issue 23: it
    preselected batch_predict); the project's templates and the shipped ones, once each."""
    from nbops.lab.handlers import templates

    for name in ("batch_predict", "torch_classifier", "aaa"):
        write_notebook(project / "templates" / f"{name}.ipynb", [("code", "x = 1", ["parameters"])])
    names = [t["name"] for t in templates(project)]
    assert names[0] == "classification" and names[1] == "aaa"
    assert names[2:] == sorted(names[2:]) and len(names) == len(set(names))
    assert {"batch_predict", "torch_classifier"} <= set(names)


def test_a_jobs_parameters_are_checked_when_it_is_created(tmp_path):
    """A typo, a wrong type or a value outside a parameter's `choices` fails Lab's job form at
    once, in nbops's words (issue 23), not the job minutes later."""
    from types import SimpleNamespace

    from jupyter_scheduler.exceptions import SchedulerError

    from nbops.lab.jobs import NbopsScheduler

    write_notebook(tmp_path / "nb.ipynb", [(
        "code", 'model = "svm"  # choices: svm, forest\nC = 1.0', ["parameters"])])
    check = NbopsScheduler._check_parameters
    scheduler = SimpleNamespace(root_dir=str(tmp_path))

    def job(**parameters):
        return SimpleNamespace(input_uri="nb.ipynb", parameters=parameters)

    check(scheduler, job(model="forest", C="0.5"))  # type: ignore[arg-type]
    for bad, words in (({"c": "0.5"}, "did you mean 'C'"), ({"C": "high"}, "'C'"),
                       ({"model": "tree"}, "not one of its choices")):
        with pytest.raises(SchedulerError, match=words):
            check(scheduler, job(**bad))  # type: ignore[arg-type]
    check(scheduler, SimpleNamespace(input_uri="missing.ipynb", parameters={"x": "1"}))  # type: ignore[arg-type]


def test_what_the_lab_frontend_uses_of_jupyter_scheduler_is_still_there():
    """lab/labextensions/@nbops/lab/ relies on two things of jupyter-scheduler's bundle that are
    not a published API: the id of its default "Additional options" plugin (which nbops's
    package.json disables and whose token it provides) and the value of JobsView.CreateForm. A
    release that moves them fails here, before the browser test."""
    import jupyter_scheduler

    from nbops.lab.handlers import labextensions_path

    ours = Path(labextensions_path()) / "@nbops" / "lab"
    entry = (ours / "static" / "remoteEntry.js").read_text()
    disabled = json.loads((ours / "package.json").read_text())["jupyterlab"]["disabledExtensions"]
    assert "@jupyterlab/scheduler:IAdvancedOptions" in disabled
    assert "const CREATE_FORM = 1;" in entry
    static = Path(jupyter_scheduler.__file__).parent / "labextension" / "static"
    bundle = "".join(p.read_text(errors="replace") for p in static.glob("*.js"))
    assert 'id:"@jupyterlab/scheduler:IAdvancedOptions"' in bundle
    assert 'e[e.CreateForm=1]="CreateForm"' in bundle


def test_the_mlflow_tab_says_starting_until_the_ui_answers(tmp_path):
    """While nothing answers on the UI's socket the launcher page says "starting" and reloads
    itself; a slow start shows the UI's last log lines, escaped (a log is not the page's HTML).
    The page that opens the UI once it answers is the browser test's."""
    import asyncio

    from nbops.lab.mlflow_ui import REFRESH_S, runs_view, starting_page

    assert asyncio.run(runs_view(str(tmp_path / "nobody.sock"), "")) is None
    page = starting_page(12.4, "")
    assert f'http-equiv="refresh" content="{REFRESH_S}"' in page and "started it 12 s ago" in page
    assert "<pre>" not in page  # not slow yet: no log
    log = tmp_path / "mlflow-ui.log"
    log.write_text("".join(f"line {i}\n" for i in range(20)) + "<script>alert(1)</script>\n")
    slow = starting_page(75, str(log))
    assert "line 13" in slow and "line 12" not in slow  # the last 8 lines
    assert "<script>" not in slow and "&lt;script&gt;alert(1)&lt;/script&gt;" in slow
