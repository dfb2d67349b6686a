import json

import pytest

from nbops.ci.scaffold import list_templates, new_notebook, rewrite_parameters
from nbops.core.config import load_settings
from nbops.core.errors import DataError, NotebookError, ParameterError
from nbops.notebook import document as notebook
from tests.conftest import write_notebook


def test_rewrite_parameters_keeps_comments_and_other_lines():
    src = 'a = 1  # first\nname: str = "x"\nlst = [\n  1,\n  2,\n]\nz = a * 2\n'
    out = rewrite_parameters(src, {"a": 5, "name": "y", "lst": [3]})
    assert out == 'a = 5  # first\nname: str = "y"\nlst = [3]\nz = a * 2\n'


@pytest.fixture
def tpl_project(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.nbops]\n")
    raw = write_notebook(tmp_path / "templates" / "clf.ipynb", [
        ("markdown", "# T"),
        ("code", 'dataset = "iris"  # which\nseed = 0', ["parameters"]),
        ("code", "print(dataset)"),
    ], {"model": {"name": "clf", "gates": []}})
    nb = json.loads(raw.read_text())
    nb["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "iris"}]
    nb["cells"][2]["execution_count"] = 3
    raw.write_text(json.dumps(nb))
    return load_settings(tmp_path)


def test_new_writes_a_clean_notebook_with_defaults_and_template(tpl_project):
    dest = new_notebook(tpl_project, "clf", "wine_exp", {"dataset": "wine", "seed": "7"})
    assert dest == tpl_project.root / "notebooks" / "wine_exp.ipynb"
    nb = notebook.load(dest)
    assert {p.name: p.default for p in nb.parameters} == {"dataset": "wine", "seed": 7}
    assert nb.parameters[0].help == "which"
    assert nb.template == "clf" and nb.model.name == "wine-exp"
    raw = json.loads(dest.read_text())
    assert all(c.get("outputs", []) == [] and c.get("execution_count") is None
               for c in raw["cells"] if c["cell_type"] == "code")
    assert [t.stem for t in list_templates(tpl_project)][0] == "clf"


def test_new_refuses_bad_input(tpl_project):
    new_notebook(tpl_project, "clf", "one", {})
    with pytest.raises(NotebookError, match="already exists"):
        new_notebook(tpl_project, "clf", "one", {})
    new_notebook(tpl_project, "clf", "one", {"seed": "2"}, force=True)
    with pytest.raises(NotebookError, match="no template named 'nope'") as err:
        new_notebook(tpl_project, "nope", "two", {})
    assert "clf" in err.value.hint
    with pytest.raises(ParameterError, match="did you mean 'seed'"):
        new_notebook(tpl_project, "clf", "two", {"sed": "1"})
    with pytest.raises(NotebookError, match="bad notebook name"):
        new_notebook(tpl_project, "clf", "../evil", {})
    assert not (tpl_project.root / "notebooks" / "two.ipynb").exists()


def test_templates_ship_inside_the_package():
    from nbops.ci.scaffold import PACKAGED

    shipped = {"classification.ipynb", "torch_classifier.ipynb", "batch_predict.ipynb"}
    assert {p.name for p in PACKAGED.glob("*.ipynb")} >= shipped


def test_init_pins_nbops_and_requires_a_tracking_server_in_ci(tmp_path):
    """The project made by `nbops init` depends on an nbops pip can install (this version pinned,
    or the spec given) and makes an empty tracking secret in CI an error."""
    import tomllib

    from nbops import __version__
    from nbops.ci.init import init_project

    init_project(tmp_path / "a")
    project = tomllib.loads((tmp_path / "a" / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == [f"nbops=={__version__}"]
    assert project["tool"]["nbops"]["require_tracking_server"] is True
    assert load_settings(tmp_path / "a").require_tracking_server is True
    workflows = {p.name for p in (tmp_path / "a" / ".github" / "workflows").iterdir()}
    assert workflows == {"notebooks.yml", "review.yml", "review-comment.yml", "retrain.yml"}
    spec = "nbops @ git+https://github.com/example/nbops@v0.1.0"
    init_project(tmp_path / "b", nbops_spec=spec)
    project = tomllib.loads((tmp_path / "b" / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == [spec]


@pytest.mark.parametrize(("spec", "message"), [
    ("numpy>=1", "names 'numpy', not nbops"),
    ("nbops @@ nowhere", "is not a requirement"),
])
def test_init_refuses_a_bad_nbops_spec_and_writes_nothing(tmp_path, spec, message):
    from nbops.ci.init import init_project
    from nbops.core.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        init_project(tmp_path / "p", nbops_spec=spec)
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").iterdir())


def test_default_spec_follows_where_nbops_was_installed_from():
    """PEP 610's direct_url.json: a git install pins its commit, an https archive its URL; a local
    path or editable checkout (this test's own venv) falls back to the version."""
    from nbops import __version__
    from nbops.ci.init import nbops_requirement, spec_from_direct_url

    git_info = {"url": "https://github.com/example/nbops.git",
                "vcs_info": {"vcs": "git", "commit_id": "a" * 40, "requested_revision": "main"}}
    assert spec_from_direct_url(git_info) == f"nbops @ git+https://github.com/example/nbops.git@{'a' * 40}"
    wheel = {"url": "https://files.example.org/nbops-0.1.0-py3-none-any.whl", "archive_info": {}}
    assert spec_from_direct_url(wheel) == "nbops @ https://files.example.org/nbops-0.1.0-py3-none-any.whl"
    assert spec_from_direct_url({"url": "file:///work/nbops", "dir_info": {"editable": True}}) is None
    assert spec_from_direct_url({"url": "file:///tmp/nbops-0.1.0-py3-none-any.whl", "archive_info": {}}) is None
    assert nbops_requirement() == f"nbops=={__version__}"  # the dev venv's editable install


@pytest.fixture
def churn_project(tpl_project):
    data = tpl_project.root / "data"
    data.mkdir()
    rows = "".join(f"{i},{'basic' if i % 2 else ''},{i % 2}\n" for i in range(8))
    (data / "churn.csv").write_text("tenure,plan,target\n" + rows)
    return tpl_project


def _declared(dest):
    nb = notebook.load(dest)
    params = {p.name: p.default for p in nb.parameters}
    return nb, params


@pytest.mark.parametrize("how", [{"data": "data/churn.csv"}, {"overrides": {"data_path": "data/churn.csv"}},
                                 {"overrides": {"data_path": "../data/churn.csv"}}])
def test_new_with_data_declares_the_file_and_points_data_path_at_it(churn_project, how):
    dest = new_notebook(churn_project, "classification", "churn", how.get("overrides", {}), data=how.get("data"))
    nb, params = _declared(dest)
    assert nb.data == ("data/churn.csv",)  # relative to the project root, as metadata.nbops.data is
    assert params["data_path"] == "../data/churn.csv"  # relative to notebooks/, where the kernel runs
    assert (dest.parent / params["data_path"]).resolve() == (churn_project.root / "data" / "churn.csv").resolve()
    assert params["dataset"] == "churn" and params["target"] == "target"
    assert 'data_path = "../data/churn.csv"  # a CSV file' in json.loads(dest.read_text())["cells"][1]["source"][1]


def test_new_with_data_keeps_explicit_values_and_takes_an_absolute_path_inside(churn_project):
    absolute = churn_project.root / "data" / "t.csv"
    absolute.write_text("x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(8)))
    dest = new_notebook(churn_project, "classification", "abs", {"target": "label", "dataset": "mine"},
                        data=str(absolute))
    nb, params = _declared(dest)
    assert nb.data == ("data/t.csv",) and params["data_path"] == "../data/t.csv"
    assert params["target"] == "label" and params["dataset"] == "mine"


def test_new_with_bad_data_writes_nothing(churn_project):
    out = churn_project.root / "notebooks" / "churn.ipynb"
    with pytest.raises(DataError, match="data file data/nope.csv not found") as err:
        new_notebook(churn_project, "classification", "churn", {}, data="data/nope.csv")
    assert "project root" in err.value.one_line()
    (churn_project.root / "data" / "raw.csv").write_text("tenure,plan,churned\n3,basic,0\n")
    with pytest.raises(DataError, match=r"data/raw.csv: no target column 'target' in its header \(3 columns\)"):
        new_notebook(churn_project, "classification", "churn", {}, data="data/raw.csv")
    # the file has `target`; a -p target= naming a missing column is refused
    with pytest.raises(DataError, match="data/churn.csv: no target column 'churned' in its header") as err:
        new_notebook(churn_project, "classification", "churn", {"target": "churned"}, data="data/churn.csv")
    assert "tenure" not in err.value.one_line()  # a file's content is never quoted (see below)
    outside = churn_project.root.parent / f"{churn_project.root.name}-outside.csv"
    outside.write_text("x,target\n1,0\n")
    with pytest.raises(DataError, match="is outside the project"):  # `nbops run` would refuse it
        new_notebook(churn_project, "classification", "churn", {}, data=str(outside))
    outside.unlink()
    with pytest.raises(NotebookError, match="no `data_path` parameter"):
        new_notebook(churn_project, "clf", "churn", {}, data="data/churn.csv")
    with pytest.raises(NotebookError, match="different files"):
        new_notebook(churn_project, "classification", "churn", {"data_path": "a.csv"}, data="data/churn.csv")
    assert not out.exists()


def test_kit_wraps_the_model_in_preprocessing_only_when_the_data_needs_it():
    import numpy as np
    import pandas as pd

    from nbops import kit

    X, y = kit.load_dataset("iris")
    for kind in kit.CLASSIFIERS:  # all-numeric, complete data: the model is what it always was
        assert repr(kit.make_classifier(kind, seed=1, features=X)) == repr(kit.make_classifier(kind, seed=1))
    assert type(kit.make_classifier("random_forest", features=X)).__name__ == "RandomForestClassifier"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"n": rng.normal(size=80), "plan": rng.choice(["a", "b"], 80)})
    frame.loc[2, "n"], frame.loc[5, "plan"] = np.nan, np.nan
    target = (frame["plan"] == "a").astype(int)
    for kind in kit.CLASSIFIERS:
        model = kit.make_classifier(kind, seed=0, features=frame).fit(frame, target)
        assert list(model.named_steps) == ["columntransformer", model.steps[-1][0]]
        unseen = pd.DataFrame({"n": [np.nan, 0.1], "plan": ["zzz", None]})
        assert len(model.predict(unseen)) == 2
    scaled = kit.preprocessor(frame, scale=True).transformers[0][1]
    assert [type(s).__name__ for s in scaled] == ["SimpleImputer", "StandardScaler"]


def test_kit_names_the_file_and_its_columns_when_the_target_is_missing(tmp_path):
    from nbops import kit

    path = tmp_path / "raw.csv"
    path.write_text("tenure,plan,churned\n1,a,0\n")
    with pytest.raises(ValueError, match=r"raw.csv: no target column 'target'; its columns are tenure, plan, churned"):
        kit.load_dataset("", csv_path=str(path))


SECRET_LINE = "root:x:0:0:s3cr3t-first-line:/root:/bin/bash"


@pytest.mark.parametrize("content", [SECRET_LINE + "\n" + "daemon:x:1:1\n", SECRET_LINE,
                                     b"\xff\xfe" + SECRET_LINE.encode(), '"' + SECRET_LINE + '\n'])
def test_new_with_data_never_prints_the_files_content(churn_project, tmp_path_factory, content):
    """Issue 22: `--data` through a link to /etc/passwd printed the target's first line. Any file
    --data names (a link out of the project is allowed, as `nbops run` allows it) is refused, when
    it is, with its path only: never a column, never a byte of it."""
    secret = tmp_path_factory.mktemp("etc") / "passwd"  # outside the project
    secret.write_bytes(content if isinstance(content, bytes) else content.encode())
    link = churn_project.root / "data" / "users.csv"
    link.symlink_to(secret)
    with pytest.raises(DataError) as err:
        new_notebook(churn_project, "classification", "users", {}, data="data/users.csv")
    line = err.value.one_line()
    assert line.startswith("data/users.csv: ") and "s3cr3t" not in line and "root" not in line, line
    assert "s3cr3t" not in str(err.value) and err.value.__cause__ is None
    assert not (churn_project.root / "notebooks" / "users.ipynb").exists()


def test_new_with_data_cli_prints_one_line_naming_the_path(churn_project, tmp_path_factory, capsys, monkeypatch):
    from nbops.cli.main import main

    secret = tmp_path_factory.mktemp("etc") / "passwd"  # outside the project
    secret.write_text(SECRET_LINE + "\n")
    (churn_project.root / "data" / "users.csv").symlink_to(secret)
    monkeypatch.chdir(churn_project.root)
    assert main(["new", "classification", "users", "--data", "data/users.csv"]) == 2
    captured = capsys.readouterr()
    assert "s3cr3t" not in captured.out + captured.err and "root:x" not in captured.out + captured.err
    [line] = captured.err.splitlines()
    assert line.startswith("nbops: error: data/users.csv: no target column 'target'")


@pytest.mark.parametrize("content, message", [
    ("a,target\n1,0\n", r"1 row\(s\), all of one class"),
    ("a,target\n", "no rows"),
    ("a,target\n" + "".join(f"{i},0\n" for i in range(50)), r"50 row\(s\), all of one class"),
    ("a,target\n1,0\n2,1\n3,0\n4,1\n", r"4 row\(s\) of 2 classes are too few"),
    ("a,target\n" + "".join(f"{i},{i % 3}\n" for i in range(8)) + "9,7\n", "too few"),  # a class of one
    ("a b,a b,target\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(8)), "column 'a b' appears more than once"),
])
def test_new_with_data_too_small_or_ambiguous_is_refused_naming_the_file(churn_project, content, message):
    """Issue 23: a CSV that cannot be split or trained on was accepted and failed 40 s later in
    scikit-learn; a header naming a column twice became `NAME.1`. Refused by `new`, nothing written."""
    (churn_project.root / "data" / "small.csv").write_text(content)
    with pytest.raises(DataError, match=message) as err:
        new_notebook(churn_project, "classification", "small", {}, data="data/small.csv")
    assert err.value.one_line().startswith("data/small.csv: ") and err.value.hint
    assert not (churn_project.root / "notebooks" / "small.ipynb").exists()
    # enough rows of each class: accepted
    (churn_project.root / "data" / "ok.csv").write_text(
        "a b,target\n" + "".join(f"{i},{i % 2}\n" for i in range(8)))
    new_notebook(churn_project, "classification", "ok", {}, data="data/ok.csv", force=True)


def test_new_with_too_small_data_cli_is_one_line_exit_2(churn_project, capsys, monkeypatch):
    from nbops.cli.main import main

    (churn_project.root / "data" / "one.csv").write_text("x,target\n1,0\n")
    monkeypatch.chdir(churn_project.root)
    assert main(["new", "classification", "one", "--data", "data/one.csv"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("nbops: error: data/one.csv: 1 row(s)") and "hint:" in line
    assert not (churn_project.root / "notebooks" / "one.ipynb").exists()


def test_kit_refuses_a_header_naming_a_column_twice(tmp_path):
    from nbops import kit

    path = tmp_path / "dup.csv"
    path.write_text("mean radius,mean radius,target\n1,2,0\n")
    with pytest.raises(ValueError, match=r"dup.csv: column 'mean radius' appears more than once"):
        kit.load_dataset("", csv_path=str(path))
    path.write_text("mean radius,worst area (cm),target\n1,2,0\n")
    X, _ = kit.load_dataset("", csv_path=str(path))
    assert list(X.columns) == ["mean radius", "worst area (cm)"]  # as the file has them
