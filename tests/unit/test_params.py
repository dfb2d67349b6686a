import pytest

from nbops.core.errors import NotebookError, ParameterError
from nbops.notebook.document import Notebook, Resources, parse_parameters
from nbops.notebook.params import coerce, load_params_file, parse_assignments, resolve, values_used

SOURCE = '''
dataset = "iris"  # which dataset
n_estimators = 100  # trees
learning_rate: float = 0.1
use_gpu = True
layers = [64, 32]
options = {"a": 1}
nothing = None
arr = list(range(3))
x, y = 1, 2
'''


def nb(params=None, cell=2):
    params = parse_parameters(SOURCE) if params is None else params
    return Notebook(path="nb.ipynb", parameters=params, parameters_cell=cell, resources=Resources(),
                    timeout=None, data=(), model=None, template=None, kernel_name="python3",
                    fingerprint="f")


def test_parse_parameters_types_defaults_and_comments():
    params = {p.name: p for p in parse_parameters(SOURCE)}
    assert list(params) == ["dataset", "n_estimators", "learning_rate", "use_gpu", "layers",
                            "options", "nothing", "arr"]
    dataset = params["dataset"]
    assert (dataset.default, dataset.type, dataset.help) == ("iris", "str", "which dataset")
    assert (params["n_estimators"].type, params["n_estimators"].help) == ("int", "trees")
    assert params["learning_rate"].type == "float"
    assert params["use_gpu"].type == "bool"
    assert params["layers"].type == "list" and params["options"].type == "dict"
    assert params["nothing"].type == "none"
    assert params["arr"].type == "expr" and params["arr"].default == "list(range(3))"


def test_syntax_error_names_the_cell():
    with pytest.raises(NotebookError, match="cell 3.*syntax error.*line 1"):
        parse_parameters("a = = 1", "nb.ipynb: cell 3")


@pytest.mark.parametrize("name,raw,expected", [
    ("n_estimators", "200", 200),
    ("n_estimators", 7.0, 7),
    ("learning_rate", "1e-3", 0.001),
    ("learning_rate", 2, 2.0),
    ("use_gpu", "false", False),
    ("use_gpu", "YES", True),
    ("dataset", "wine", "wine"),
    ("dataset", 5, "5"),
    ("layers", "[8, 4]", [8, 4]),
    ("options", '{"b": 2}', {"b": 2}),
    ("nothing", "3", 3),
    ("arr", "[1, 2]", [1, 2]),
])
def test_coerce_to_the_default_type(name, raw, expected):
    notebook = nb()
    value = coerce(notebook.parameter(name), raw, "nb.ipynb")
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("name,raw", [
    ("n_estimators", "abc"), ("n_estimators", "1.5"), ("n_estimators", True), ("learning_rate", "fast"),
    ("use_gpu", "maybe"), ("layers", "3"), ("options", "[1]"),
])
def test_wrong_types_are_rejected_with_the_parameter_named(name, raw):
    with pytest.raises(ParameterError, match=f"parameter '{name}' expects"):
        coerce(nb().parameter(name), raw, "nb.ipynb")


def test_unknown_parameter_suggests_the_closest_name():
    with pytest.raises(ParameterError) as err:
        resolve(nb(), {"n_estimator": "3"})
    assert "unknown parameter 'n_estimator'" in err.value.message
    assert "did you mean 'n_estimators'?" in err.value.message
    assert "dataset" in err.value.hint


def test_unknown_parameter_without_parameters_cell():
    with pytest.raises(ParameterError, match="no cell tagged 'parameters'"):
        resolve(nb(params=(), cell=None), {"a": "1"})


def test_values_used_merges_defaults_and_overrides():
    notebook = nb()
    values = values_used(notebook, resolve(notebook, {"n_estimators": "5"}))
    assert values["n_estimators"] == 5 and values["dataset"] == "iris"


def test_parse_assignments():
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    for bad in ["novalue", "=3", "1a=2"]:
        with pytest.raises(ParameterError, match="bad parameter"):
            parse_assignments([bad])


def test_params_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("n_estimators: 12\nuse_gpu: false\n")
    assert load_params_file(f) == {"n_estimators": 12, "use_gpu": False}
    f.write_text("a: [1,\n")
    with pytest.raises(ParameterError, match="not valid YAML"):
        load_params_file(f)
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="mapping"):
        load_params_file(f)
    with pytest.raises(ParameterError, match="no such parameters file"):
        load_params_file(tmp_path / "missing.yaml")


CHOICES = '''
model = "forest"  # which model; choices: forest, svm, "two words"
depth = 3  # choices: 3, 5, 8
rate = 0.1  # choices: 0.1, 1
free = "x"  # any text
'''


def test_choices_are_parsed_and_typed_like_the_default():
    params = {p.name: p for p in parse_parameters(CHOICES, "nb.ipynb: cell 2")}
    assert params["model"].choices == ("forest", "svm", "two words")
    assert params["model"].help == "which model; choices: forest, svm, \"two words\""  # shown by `nbops templates`
    assert params["depth"].choices == (3, 5, 8) and all(type(c) is int for c in params["depth"].choices)
    assert params["rate"].choices == (0.1, 1.0) and all(type(c) is float for c in params["rate"].choices)
    assert params["free"].choices is None


@pytest.mark.parametrize("source,message", [
    ("depth = 3  # choices: 3, five", "parameter 'depth': choice 'five' is not int like its default 3"),
    ("depth = 3  # choices: 5, 8", "parameter 'depth': its default 3 is not one of its choices \\(5, 8\\)"),
    ("model = 'a'  # choices:", "parameter 'model': `choices:` lists no values"),
])
def test_a_bad_choices_declaration_names_the_cell(source, message):
    with pytest.raises(NotebookError, match=f"nb.ipynb: cell 2: {message}"):
        parse_parameters(source, "nb.ipynb: cell 2")


def test_values_outside_the_choices_are_refused_in_one_line(tmp_path):
    notebook = nb(parse_parameters(CHOICES))
    assert resolve(notebook, {"model": "svm", "depth": "5", "rate": "1"}) == {"model": "svm", "depth": 5, "rate": 1.0}
    assert resolve(notebook, {"depth": 8.0}) == {"depth": 8}  # a YAML value, typed first
    with pytest.raises(ParameterError) as bad:
        resolve(notebook, {"model": "xgboost"})
    assert bad.value.one_line() == ("nb.ipynb: parameter 'model' got 'xgboost', not one of its choices: "
                                    "forest, svm, two words")
    with pytest.raises(ParameterError, match="parameter 'model' got 'svn', .*; did you mean 'svm'\\?"):
        resolve(notebook, {"model": "svn"})
    with pytest.raises(ParameterError, match="parameter 'depth' got 4, not one of its choices: 3, 5, 8$"):
        resolve(notebook, {"depth": 4})  # from -f params.yaml
    assert resolve(notebook, {"free": "anything"}) == {"free": "anything"}
