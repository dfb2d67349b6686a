"""review.md draws the pipeline graph as a Mermaid block when a change touches what notebooks
need (issue 25); a change that does not leaves it out."""

from __future__ import annotations

import json

from nbops.cli.main import main
from tests.conftest import commit_all, write_notebook


def test_mermaid_graph_when_needs_change(project, capsys):
    folder = project / "notebooks" / "p"
    write_notebook(folder / "prepare.ipynb", [("code", "x = 1")])
    train = write_notebook(folder / "train.ipynb", [("code", "y = 2")])
    commit_all(project, "base")

    nb = json.loads(train.read_text())
    nb["cells"][0]["source"] = "y = 3"
    train.write_text(json.dumps(nb))
    commit_all(project, "no graph change")
    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0
    assert "mermaid" not in (project / "D" / "review.md").read_text()

    nb["metadata"]["nbops"] = {"needs": ["prepare"]}
    train.write_text(json.dumps(nb))
    write_notebook(folder / "evaluate.ipynb", [("code", "z = 4")], {"needs": ["train"]})
    commit_all(project, "a pipeline")
    capsys.readouterr()
    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0
    md = (project / "D" / "review.md").read_text()
    assert "### Pipeline graph" in md and "`notebooks/p/train.ipynb`" in md
    block = md[md.index("```mermaid"):]
    block = block[: block.index("```", 3) + 3]
    assert 'notebooks/p/prepare.ipynb"]' in block and block.count("-->") == 2
    assert md.index("### Pipeline graph") < md.index("(modified)")

    nb["metadata"]["nbops"] = {"needs": ["nowhere"]}
    train.write_text(json.dumps(nb))
    commit_all(project, "a bad need")
    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0
    md = (project / "D" / "review.md").read_text()
    assert "The pipeline graph at head is not valid: notebooks/p/train.ipynb: needs 'nowhere'" in md
