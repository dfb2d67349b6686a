import json

import pytest

from nbops.core.errors import NotebookError
from nbops.core.gates import Gate, failed_gates, parse_gate
from nbops.notebook import document as notebook
from tests.conftest import write_notebook

META = {"resources": {"gpu": 1}, "timeout": 60, "data": ["data/x.csv"],
        "model": {"name": "m", "gates": ["accuracy >= 0.9", "loss<0.5"], "compare": "accuracy",
                  "higher_is_better": True}, "template": "classification"}


def test_load_reads_parameters_metadata_and_position(tmp_path):
    path = write_notebook(tmp_path / "a.ipynb", [
        ("markdown", "# title"),
        ("code", "alpha = 0.5\nseed = 1", ["parameters"]),
        ("code", "print(alpha)"),
    ], META)
    nb = notebook.load(path)
    assert [p.name for p in nb.parameters] == ["alpha", "seed"]
    assert nb.parameters_cell == 2
    assert nb.resources.gpu == 1 and nb.timeout == 60.0 and nb.data == ("data/x.csv",)
    assert nb.model.name == "m" and nb.model.gates == (Gate("accuracy", ">=", 0.9), Gate("loss", "<", 0.5))
    assert nb.template == "classification" and nb.kernel_name == "python3"


def test_fingerprint_ignores_outputs_but_not_source(tmp_path):
    path = write_notebook(tmp_path / "a.ipynb", [("code", "x = 1", ["parameters"]), ("code", "x")])
    base = notebook.load(path).fingerprint
    raw = json.loads(path.read_text())
    raw["cells"][1]["outputs"] = [{"output_type": "execute_result", "data": {"text/plain": "1"},
                                   "metadata": {}, "execution_count": 1}]
    raw["cells"][1]["execution_count"] = 1
    path.write_text(json.dumps(raw))
    assert notebook.load(path).fingerprint == base
    raw["cells"][1]["source"] = "x + 1"
    path.write_text(json.dumps(raw))
    assert notebook.load(path).fingerprint != base


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON \\(line 1"),
    ('{"nbformat": 4}', "not a Jupyter notebook"),
    ('{"nbformat": 3, "cells": []}', "nbformat 3 is too old"),
    ('{"nbformat": 4, "cells": [{"source": "x"}]}', "cell 1: malformed cell"),
])
def test_broken_files_get_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.ipynb"
    path.write_text(content)
    with pytest.raises(NotebookError, match=message):
        notebook.load(path)


def test_missing_and_wrong_suffix(tmp_path):
    with pytest.raises(NotebookError, match="no such notebook"):
        notebook.load(tmp_path / "none.ipynb")
    with pytest.raises(NotebookError, match="not an .ipynb file"):
        notebook.load(tmp_path / "x.py")


@pytest.mark.parametrize("meta,message", [
    ({"model": {"gates": []}}, "needs a 'name'"),
    ({"model": {"name": "m", "gates": ["accuracy is high"]}}, "bad gate 'accuracy is high'"),
    ({"timeout": -1}, "timeout must be a positive"),
    ({"data": "x.csv"}, "data must be a list"),
    ({"resources": {"gpu": "many"}}, "resources must look like"),
])
def test_bad_metadata(tmp_path, meta, message):
    path = write_notebook(tmp_path / "m.ipynb", [("code", "a = 1", ["parameters"])], meta)
    with pytest.raises(NotebookError, match=message):
        notebook.load(path)


def test_gates():
    assert parse_gate(" f1>=0.5 ") == Gate("f1", ">=", 0.5)
    gates = (parse_gate("accuracy >= 0.9"), parse_gate("loss < 1e-1"))
    assert failed_gates(gates, {"accuracy": 0.95, "loss": 0.05}) == []
    reasons = failed_gates(gates, {"accuracy": 0.85})
    assert reasons == ["gate 'accuracy >= 0.9' failed: accuracy = 0.85",
                       "gate 'loss < 0.1' failed: metric 'loss' was not recorded"]


# --- the strip transform: metadata.language_info.version (issue 23) -----------------------------

LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3"}


def _executed_on(tmp_path, python: str) -> str:
    """The same notebook as a kernel on Python PYTHON leaves it: outputs, counts, its version."""
    path = write_notebook(tmp_path / f"n{python}.ipynb", [("code", "x = 1", ["parameters"]), ("code", "x")],
                          {"model": {"name": "m", "gates": ["accuracy >= 0.8"]}})
    nb = json.loads(path.read_text())
    nb["metadata"]["language_info"] = {**LANGUAGE_INFO, "version": python}
    nb["cells"][1]["outputs"] = [{"output_type": "execute_result", "data": {"text/plain": "1"},
                                  "metadata": {}, "execution_count": 2}]
    nb["cells"][1]["execution_count"] = 2
    return json.dumps(nb, indent=1)


def test_strip_drops_language_info_version_and_keeps_the_rest(tmp_path):
    from nbops.notebook.strip import strip_text

    stripped = json.loads(strip_text(_executed_on(tmp_path, "3.11.4")))
    assert stripped["metadata"]["language_info"] == LANGUAGE_INFO  # name and the rest kept
    assert stripped["metadata"]["nbops"] == {"model": {"name": "m", "gates": ["accuracy >= 0.8"]}}
    assert [c["id"] for c in stripped["cells"]] == ["c0", "c1"] and stripped["cells"][1]["outputs"] == []
    import nbformat  # still a valid notebook

    nbformat.validate(nbformat.from_dict(stripped))


def test_strip_is_the_same_bytes_whatever_python_ran_the_notebook(tmp_path):
    from nbops.notebook.strip import strip_text

    texts = {python: strip_text(_executed_on(tmp_path, python)) for python in ("3.11.4", "3.12.7", "3.13.0")}
    assert len(set(texts.values())) == 1
    assert '"version": "3.1' not in texts["3.11.4"]


def test_check_reports_and_fix_strips_a_notebook_whose_only_difference_is_the_version(tmp_path):
    """`nbops check --fix` uses the same transform: a version alone is NB001, and --fix removes it."""
    from nbops.notebook.strip import strip_file, strip_text, strippable

    path = write_notebook(tmp_path / "v.ipynb", [("code", "x = 1", ["parameters"])])
    path.write_text(strip_text(path.read_text()))  # sources as lists, as nbformat writes them
    nb = json.loads(path.read_text())
    assert strippable(nb) == [] and strip_file(path) is False  # nothing to strip: untouched
    nb["metadata"]["language_info"]["version"] = "3.12.7"
    path.write_text(json.dumps(nb, indent=1))
    assert strippable(nb) == [(None, "has metadata.language_info.version")]
    assert strip_file(path) is True
    assert json.loads(path.read_text())["metadata"]["language_info"] == {"name": "python"}
    assert strip_text(path.read_text()) == path.read_text()
    nb["metadata"]["language_info"] = "python"  # not an object: nothing nested to find, no crash
    assert strippable(nb) == []
