"""Results a person can look at: the executed notebook as HTML beside the .ipynb, run names that
say what differed, and the templates' figures, on real kernels and a real MLflow store."""

from __future__ import annotations

import pytest

from nbops.cli.main import main
from nbops.core.secrets import MASK
from nbops.run.render import run_name
from tests.conftest import all_runs, commit_all, write_notebook

SOURCE_MARK = "UNIQUE_SOURCE_MARK = 1"


def html_notebook(root):
    return write_notebook(root / "notebooks" / "shown.ipynb", [
        ("markdown", "# Shown"),
        ("code", 'C = 1.0\nseed = 0\ntoken = "abc"', ["parameters"]),
        ("code", f'{SOURCE_MARK}\nprint("the answer is", 6 * 7, "with C", C)'),
    ])


def _html(client, run):
    arts = [a.path for a in client.list_artifacts(run.info.run_id, "notebook")]
    [page] = [a for a in arts if a.endswith(".html")]
    [ipynb] = [a for a in arts if a.endswith(".ipynb")]
    notebook = run.data.tags["nbops.notebook"].rsplit("/", 1)[-1].removesuffix(".ipynb")
    assert page == f"notebook/{notebook}.html"  # the README's notebook/<name>.html, beside the .ipynb
    with open(client.download_artifacts(run.info.run_id, page), encoding="utf-8") as f:
        return f.read()


def test_run_logs_html_of_the_executed_notebook(project, mlflow_client, capsys):
    nb = html_notebook(project)
    commit_all(project)
    assert main(["run", str(nb), "-p", "C=0.5"]) == 0, capsys.readouterr().out
    client = mlflow_client()
    [run] = all_runs(client)
    page = _html(client, run)
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "the answer is 42 with C 0.5" in page  # the cell's output
    assert "UNIQUE_SOURCE_MARK" in page  # and its source, by default
    assert "nbops.html_error" not in run.data.tags
    assert run.info.run_name == "shown C=0.5"


def test_hide_input_leaves_source_out(project, mlflow_client, capsys):
    text = (project / "pyproject.toml").read_text().replace(
        '[tool.nbops]\n', '[tool.nbops]\nhtml_hide_input = true\n')
    (project / "pyproject.toml").write_text(text)
    nb = html_notebook(project)
    commit_all(project)
    assert main(["run", str(nb)]) == 0, capsys.readouterr().out
    client = mlflow_client()
    [run] = all_runs(client)
    page = _html(client, run)
    assert "the answer is 42 with C 1.0" in page
    assert "UNIQUE_SOURCE_MARK" not in page
    assert run.info.run_name == "shown"  # nothing differs from the defaults


def test_hide_input_flag(project, mlflow_client, capsys):
    nb = html_notebook(project)
    commit_all(project)
    assert main(["run", str(nb), "--hide-input"]) == 0, capsys.readouterr().out
    client = mlflow_client()
    [run] = all_runs(client)
    page = _html(client, run)
    assert "the answer is 42 with C 1.0" in page and "UNIQUE_SOURCE_MARK" not in page


def test_a_notebook_that_cannot_be_rendered_still_finishes(project, mlflow_client, capsys, monkeypatch):
    # nbconvert raising (a broken template, say): rendering fails, the run does not
    import nbconvert

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(nbconvert.HTMLExporter, "from_notebook_node", broken)
    nb = html_notebook(project)
    commit_all(project)
    assert main(["run", str(nb)]) == 0, capsys.readouterr().out
    client = mlflow_client()
    [run] = all_runs(client)
    assert run.info.status == "FINISHED"
    assert "template exploded" in run.data.tags["nbops.html_error"]
    arts = [a.path for a in client.list_artifacts(run.info.run_id, "notebook")]
    assert any(a.endswith(".ipynb") for a in arts) and not any(a.endswith(".html") for a in arts)


def test_secret_parameters_are_masked_in_the_run_name(project, mlflow_client, capsys):
    nb = html_notebook(project)
    commit_all(project)
    assert main(["run", str(nb), "-p", "token=s3cr3t-value", "-p", "seed=0"]) == 0, capsys.readouterr().out
    [run] = all_runs(mlflow_client())
    assert "s3cr3t" not in run.info.run_name
    assert run.info.run_name.startswith("shown token=") and "seed" not in run.info.run_name


def test_sweep_points_are_named_by_their_values(project, mlflow_client, capsys):
    nb = html_notebook(project)
    commit_all(project)
    assert main(["sweep", str(nb), "-p", "C=0.5,2.0"]) == 0, capsys.readouterr().out
    names = sorted(r.info.run_name for r in all_runs(mlflow_client()))
    assert "shown C=0.5" in names and "shown C=2" in names


@pytest.mark.parametrize("overrides, expected", [
    ({}, "wine_svm"),
    ({"C": 1.0}, "wine_svm"),  # the default
    ({"C": 0.5}, "wine_svm C=0.5"),
    ({"C": 0.5, "kernel": "rbf"}, "wine_svm C=0.5 kernel=rbf"),
    ({"kernel": "two words"}, 'wine_svm kernel="two words"'),
    ({"layers": [64, 32]}, "wine_svm layers=[64,32]"),
    ({"api_key": "xyz"}, f"wine_svm api_key={MASK}"),
])
def test_run_name(overrides, expected):
    defaults = {"C": 1.0, "kernel": "linear", "layers": [128], "api_key": ""}
    assert run_name("wine_svm", overrides, defaults, secrets=("api_key",)) == expected


def test_run_name_is_cut_to_a_sane_length():
    name = run_name("nb", {"text": "x" * 500}, {"text": ""})
    assert len(name) == 120 and name.endswith("…") and name.startswith("nb text=xxx")


@pytest.mark.parametrize("template, params, figures", [
    ("classification", ["-p", "dataset=wine"], {"confusion_matrix.png"}),
    ("torch_classifier", ["-p", "epochs=3", "-p", "use_gpu=False"], {"confusion_matrix.png", "training_curve.png"}),
])
def test_templates_log_their_figures(project, mlflow_client, capsys, template, params, figures):
    assert main(["new", template, "exp"]) == 0, capsys.readouterr()
    commit_all(project)
    assert main(["run", "notebooks/exp.ipynb", *params]) == 0, capsys.readouterr().out
    client = mlflow_client()
    [run] = all_runs(client)
    assert run.info.status == "FINISHED"
    logged = {a.path.split("/")[-1]: a for a in client.list_artifacts(run.info.run_id, "figures")}
    assert set(logged) == figures
    for name in figures:
        with open(client.download_artifacts(run.info.run_id, f"figures/{name}"), "rb") as f:
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n" and logged[name].file_size > 5000  # a real drawing
    page = _html(client, run)
    assert page.count("data:image/png;base64") >= len(figures)  # shown in the notebook too
    assert "log_confusion_matrix" in page


def test_the_logged_page_runs_nothing_the_notebook_wrote(project, mlflow_client, capsys):
    # issue 22: markdown and outputs that would run script or load from elsewhere in the MLflow UI
    nb = write_notebook(project / "notebooks" / "hostile.ipynb", [
        ("markdown", "<script>document.title='pwned'</script><img src=x onerror=alert(1)>\n\nkept **bold**"),
        ("markdown", '[link](javascript:alert(2)) <img src="http://127.0.0.1:9/remote.png"><style>main{display:none}'),
        ("code", "from IPython.display import HTML, Javascript, Markdown, display\n"
                 "j = ''.join  # the source shows as text: the payloads only come together in the outputs\n"
                 "display(HTML(j(['<b>html out</b><scr', 'ipt>alert(3)</scr', 'ipt><svg on', 'load=alert(4)>'])))\n"
                 "display(Javascript('alert(\"js out\")'))\n"
                 "display(Markdown(j(['<img src=x on', 'error=alert(5)> md out'])))"),
        ("markdown", "LAST_CELL_MARKER"),
    ])
    commit_all(project)
    assert main(["run", str(nb)]) == 0, capsys.readouterr().out
    page = _html(mlflow_client(), all_runs(mlflow_client())[0])
    body = page[page.index("<body"):]
    assert 'http-equiv="Content-Security-Policy"' in page and "default-src 'none'" in page
    assert "<script" not in page.lower() and "onerror" not in body and "onload" not in body
    assert "javascript:" not in body and "127.0.0.1" not in body and "display:none" not in body
    assert "<b>html out</b>" in page and "md out" in page and "<strong>bold</strong>" in page
    assert 'alert("js out")' in page  # the JavaScript output as text
    assert "LAST_CELL_MARKER" in page
