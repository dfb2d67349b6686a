"""`nbops review` on real git history: markdown for the pull request, HTML pages, odd notebooks;
in-process, no kernel (`review --run` is in tests/integration/test_review.py)."""

from __future__ import annotations

import base64
import json
import re

from nbops.cli.main import main
from nbops.review.changes import NotebookChange, render_markdown, review_notebook
from tests.conftest import commit_all, git, write_notebook

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()


def with_outputs(path, text="OUTPUT-TEXT-SHOULD-NOT-APPEAR"):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            cell["execution_count"] = i + 1
            cell["outputs"] = [
                {"output_type": "stream", "name": "stdout", "text": f"{text}\n"},
                {"output_type": "display_data", "metadata": {}, "data": {"image/png": PNG}},
            ]
    path.write_text(json.dumps(nb))


def base_notebook(root):
    return write_notebook(root / "notebooks" / "exp.ipynb", [
        ("markdown", "# Expériment ✓"),
        ("code", "C = 1.0  # strength\nseed = 0", ["parameters"]),
        ("code", "x = C * 2\nprint('old line')"),
        ("code", "print(x)"),
    ])


def test_review_of_a_modified_notebook(project, capsys):
    path = base_notebook(project)
    commit_all(project, "base")
    nb = json.loads(path.read_text())
    nb["cells"][1]["source"] = "C = 0.5  # strength\nseed = 0"
    nb["cells"][2]["source"] = "x = C * 2\nprint('new line')"
    nb["cells"].append({"cell_type": "code", "id": "added", "metadata": {}, "outputs": [],
                        "execution_count": None, "source": "print('an added cell')"})
    path.write_text(json.dumps(nb))
    with_outputs(path)
    commit_all(project, "head")

    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0
    md = (project / "D" / "review.md").read_text()
    assert "`notebooks/exp.ipynb` (modified)" in md
    assert "1 cell(s) added, 0 removed, 2 modified" in md
    assert "`C: 1.0 -> 0.5`" in md
    block = md[md.index("```diff", md.index("cell 3, code, modified")):]
    block = block[: block.index("```", 7)]
    assert "-print('old line')" in block and "+print('new line')" in block
    assert "+print('an added cell')" in md
    assert "OUTPUT-TEXT" not in md and "image/png" not in md and "execution_count" not in md
    page = (project / "D" / "notebooks__exp.ipynb.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page)
    assert "old line" in page and "OUTPUT-TEXT" not in page  # the browser test checks the rendering


def test_added_deleted_renamed_empty_old_format_and_broken(project, capsys):
    base_notebook(project)
    keep = write_notebook(project / "notebooks" / "keep.ipynb", [("code", "a = 1", ["parameters"])])
    write_notebook(project / "notebooks" / "gone.ipynb", [("code", "print('bye')")])
    old = {"nbformat": 4, "nbformat_minor": 0, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "language": "python", "source": ["print('v4.0')\n"]}]}
    (project / "notebooks" / "old.ipynb").write_text(json.dumps(old))
    commit_all(project, "base")
    git(project, "mv", "notebooks/keep.ipynb", "notebooks/kept.ipynb")
    (project / "notebooks" / "gone.ipynb").unlink()
    (project / "notebooks" / "empty.ipynb").write_text("")
    (project / "notebooks" / "broken.ipynb").write_text('{"cells": [')
    write_notebook(project / "notebooks" / "new.ipynb", [("markdown", "# nouveau — ünïcode")])
    old["cells"][0]["source"] = ["print('v4.0 changed')\n"]
    (project / "notebooks" / "old.ipynb").write_text(json.dumps(old))
    assert keep.exists() is False
    commit_all(project, "head")

    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0
    captured = capsys.readouterr()
    assert "could not review notebooks/broken.ipynb" in captured.err
    md = (project / "D" / "review.md").read_text()
    assert "`notebooks/keep.ipynb` → `notebooks/kept.ipynb` (renamed)" in md
    assert "`notebooks/gone.ipynb` (deleted)" in md and "-print('bye')" in md
    assert "`notebooks/new.ipynb` (added)" in md and "+# nouveau — ünïcode" in md
    assert "`notebooks/empty.ipynb` (added)" in md
    assert "`notebooks/broken.ipynb` (added)\n**Could not review:**" in md
    assert "+print('v4.0 changed')" in md
    pages = {p.name for p in (project / "D").glob("*.html")}
    assert {"notebooks__kept.ipynb.html", "notebooks__gone.ipynb.html", "notebooks__new.ipynb.html",
            "notebooks__old.ipynb.html", "notebooks__empty.ipynb.html"} <= pages


def test_long_comments_are_cut_with_a_pointer():
    cells = [{"cell_type": "code", "source": f"print({i})\n" * 50, "metadata": {}, "outputs": [],
              "execution_count": None} for i in range(300)]
    head = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    review = review_notebook(NotebookChange("added", "big.ipynb", head=head))
    text = render_markdown([review], "a", "b")
    assert len(text) <= 60_000 and "The full diff is in the HTML pages" in text
    assert text.count("```") % 2 == 0


def test_bad_ref_is_a_clear_error(project, capsys):
    assert main(["review", "--base", "no-such-ref", "--out", "D"]) == 2
    assert "git diff" in capsys.readouterr().err
