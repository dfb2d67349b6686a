"""The pipeline graph (src/nbops/pipeline/): needs resolved, checked and put in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops.core.errors import NotebookError
from nbops.notebook.document import load
from nbops.pipeline import fingerprint, graph, render
from tests.conftest import write_notebook


def nb(folder: Path, name: str, needs=None, source: str = "x = 1"):
    meta = {"needs": needs} if needs is not None else {}
    return load(write_notebook(folder / f"{name}.ipynb", [("code", source)], meta))


def diamond(folder: Path):
    return [nb(folder, "evaluate", ["train_a", "train_b"]), nb(folder, "train_b", ["prepare"]),
            nb(folder, "train_a", ["prepare"]), nb(folder, "prepare")]


def test_diamond_layers_and_relations(tmp_path):
    g = graph.build(diamond(tmp_path))
    assert [[graph.key(tmp_path / f"{n}.ipynb") for n in layer] for layer in
            (["prepare"], ["train_b", "train_a"], ["evaluate"])] == [list(layer) for layer in g.layers]
    assert graph.names(g.nodes) == ["prepare", "train_b", "train_a", "evaluate"]
    assert g.has_edges
    ev = tmp_path / "evaluate.ipynb"
    assert graph.names(g.upstream(ev)) == ["train_a", "train_b"]
    assert {p.stem for p in g.ancestors(ev)} == {"prepare", "train_a", "train_b"}
    assert {p.stem for p in g.descendants(tmp_path / "prepare.ipynb")} == {"train_a", "train_b", "evaluate"}
    assert g.descendants(ev) == set()


def test_no_needs_is_one_layer(tmp_path):
    g = graph.build([nb(tmp_path, "a"), nb(tmp_path, "b")])
    assert not g.has_edges and len(g.layers) == 1


@pytest.mark.parametrize("needs, expected", [
    ("prepare", "must be a list of notebook names"),
    (["prepare", "prepare"], "need 'prepare' is listed twice"),
    (["prepare.ipynb"], "need 'prepare.ipynb' is not a notebook name"),
    ([""], "must be a list"),
])
def test_bad_needs_metadata(tmp_path, needs, expected):
    with pytest.raises(NotebookError, match=expected) as err:
        graph.build([nb(tmp_path, "train", needs), nb(tmp_path, "prepare")])
    assert str(tmp_path / "train.ipynb") in str(err.value) and err.value.hint


def test_missing_need_names_the_notebook_and_the_need(tmp_path):
    with pytest.raises(NotebookError) as err:
        graph.build([nb(tmp_path, "train", ["prepare"])])
    assert str(err.value).startswith(f"{tmp_path / 'train.ipynb'}: needs 'prepare'")
    assert "\n" not in str(err.value) and "prepare.ipynb" in err.value.hint


def test_cycle_is_named(tmp_path):
    nbs = [nb(tmp_path, "a", ["c"]), nb(tmp_path, "b", ["a"]), nb(tmp_path, "c", ["b"]), nb(tmp_path, "d")]
    with pytest.raises(NotebookError, match=r"a cycle: (a -> c -> b -> a|b -> a -> c -> b|c -> b -> a -> c)"):
        graph.build(nbs)
    with pytest.raises(NotebookError, match=r"needs 'self'.*a cycle: self -> self"):
        graph.build([nb(tmp_path, "self", ["self"])])


def test_ambiguous_name_is_an_error_unless_one_sits_beside(tmp_path):
    one, two, three = tmp_path / "one", tmp_path / "two", tmp_path / "three"
    prep1, prep2 = nb(one, "prepare"), nb(two, "prepare")
    with pytest.raises(NotebookError, match="several notebooks given are named 'prepare'"):
        graph.build([prep1, prep2, nb(three, "train", ["prepare"])])
    g = graph.build([prep1, prep2, nb(two, "train", ["prepare"])])  # its own folder's prepare
    assert g.upstream(two / "train.ipynb")[0].key == graph.key(two / "prepare.ipynb")
    with pytest.raises(NotebookError, match="given twice"):
        graph.build([prep1, load(one / "prepare.ipynb")])


def test_external_need_found_beside_with_its_own_needs(tmp_path):
    nb(tmp_path, "prepare")
    nb(tmp_path, "train", ["prepare"])
    g = graph.build([nb(tmp_path, "evaluate", ["train"])], find=load)
    assert graph.names(g.nodes) == ["prepare", "train", "evaluate"]
    assert [n.external for n in g.nodes] == [True, True, False]
    with pytest.raises(NotebookError, match="needs 'train'"):
        graph.build([load(tmp_path / "evaluate.ipynb")])  # no find: a need must be given


def test_fingerprint_includes_upstreams(tmp_path):
    nbs = diamond(tmp_path)
    g = graph.build(nbs)
    own = {graph.key(n.path): n.fingerprint for n in nbs}
    fps = fingerprint.combined(g, own)
    prep = graph.key(tmp_path / "prepare.ipynb")
    assert fps[prep] == own[prep]  # needs nothing: its own, as before pipelines
    changed = fingerprint.combined(g, {**own, prep: "other"})
    assert all(changed[k] != fps[k] for k in fps)  # everything downstream moves
    ev = graph.key(tmp_path / "evaluate.ipynb")
    changed = fingerprint.combined(g, {**own, ev: "other"})
    assert [k.stem for k in fps if changed[k] != fps[k]] == ["evaluate"]


def test_render_text_and_mermaid(tmp_path):
    g = graph.build(diamond(tmp_path / "notebooks"))
    lines = render.text(g, tmp_path)
    assert lines[0] == "1  notebooks/prepare.ipynb"
    assert lines[-1] == "3  notebooks/evaluate.ipynb  needs train_a, train_b"
    block = render.mermaid(g, tmp_path)
    assert block.startswith("```mermaid\nflowchart LR\n") and block.endswith("```")
    assert block.count("-->") == 4 and 'n0["notebooks/prepare.ipynb"]' in block
