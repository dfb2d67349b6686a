"""`nbops review` on real git history: markdown for the pull request, HTML pages, odd notebooks;
in-process, no kernel (`review --run` is in tests/integration/test_review.py)."""

from __future__ import annotations

import base64
import json
import re

import pytest

from nbops.cli.main import main
from nbops.review.changes import NotebookChange, NotebookReview, review_notebook
from nbops.review.markdown import render_markdown
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
    out = capsys.readouterr().out
    assert "D/index.html (open in a browser" in out and "nbdiff-web HEAD~1 HEAD PATH" in out
    md = (project / "D" / "review.md").read_text()
    assert "- `notebooks/exp.ipynb` (modified): 1 cell(s) added, 0 removed, 2 modified" in md
    # an output left in by mistake is said first, per notebook and cell
    assert md.index("**Committed outputs** in 1 notebook(s)") < md.index("(modified)")
    assert "`cell 3: stdout, image/png`" in md
    assert "`C: 1.0 -> 0.5`" in md
    block = md[md.index("```diff", md.index("cell 3, code, modified")):]
    block = block[: block.index("```", 7)]
    assert "-print('old line')" in block and "+print('new line')" in block
    assert "+print('an added cell')" in md
    assert "OUTPUT-TEXT" not in md and "execution_count" not in md
    page = (project / "D" / "notebooks__exp.ipynb.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page)
    assert "old line" in page and "OUTPUT-TEXT" not in page  # the browser test checks the rendering
    assert 'id="nbops-outputs"' in page and "cell 3: stdout, image/png" in page
    index = (project / "D" / "index.html").read_text()
    assert 'href="notebooks__exp.ipynb.html"' in index and "committed outputs" in index


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
    assert "- `notebooks/broken.ipynb` (added): **could not review:** `" in md
    assert "+print('v4.0 changed')" in md
    pages = {p.name for p in (project / "D").glob("*.html")}
    assert {"notebooks__kept.ipynb.html", "notebooks__gone.ipynb.html", "notebooks__new.ipynb.html",
            "notebooks__old.ipynb.html", "notebooks__empty.ipynb.html"} <= pages


def _fences(md: str) -> list[str]:
    """The content of every fenced block of MD, parsed as CommonMark."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(md)
    assert all(t.type != "html_block" or t.content.startswith("<!-- nbops-review -->") for t in tokens)
    return [t.content for t in tokens if t.type in ("fence", "code_block")]


def _added(path: str, sources: list[str]) -> NotebookReview:
    cells = [{"cell_type": "code", "id": f"c{i}", "source": s, "metadata": {}, "outputs": [],
              "execution_count": None} for i, s in enumerate(sources)]
    head = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    return review_notebook(NotebookChange("added", path, head=head))


def test_every_notebook_is_named_first_and_the_budget_goes_to_diffs():
    reviews = [_added(f"nb/{i:03d}.ipynb", [f"print({i}, {j})\n" * 30 for j in range(8)]) for i in range(150)]
    text = render_markdown(reviews, "a", "b")
    assert len(text) <= 60_000
    first_diff = text.index("```diff")
    for i in range(150):  # every notebook named with its summary line, before any diff
        assert text.index(f"- `nb/{i:03d}.ipynb` (added): 8 cell(s) added, 0 removed, 0 modified") < first_diff
    fences = _fences(text)
    diffs = [c.diff + "\n" for r in reviews for c in r.cells]
    assert fences and all(f in diffs for f in fences)  # each block is exactly one cell's diff
    left = re.search(r"\*\*Left out for length\*\* \(60,000 characters\): (\d+) cell diff\(s\) of (\d+) notebook", text)
    assert left and int(left.group(1)) + len(fences) == len(diffs)
    assert re.search(r"`nb/1\d\d.ipynb` \(8\) and \d+ more notebook\(s\)\. Every diff is in the HTML pages", text)


def test_fences_in_cells_never_close_the_diff_block_and_names_stay_code():
    hostile = ["x = 1\n```\nprint('after a fence')", "    ```\n    indented fence", "````python\ncode\n````",
               "~~~\ntilde\n~~~", "`` ` ``  and ``````", "<!-- comment -->\n<script>alert(1)</script>"]
    review = _added("odd`na``me.ipynb", hostile)
    text = render_markdown([review], "main`", "he|ad")
    fences = _fences(text)
    assert fences == [c.diff + "\n" for c in review.cells]  # every diff inside its own block, whole
    from markdown_it import MarkdownIt

    inline = [t for t in MarkdownIt("commonmark").parse(text) if t.type == "inline"]
    codes = [c.content for t in inline for c in t.children or [] if c.type == "code_inline"]
    assert "odd`na``me.ipynb" in codes and "main`" in codes


def test_a_huge_cell_falls_back_to_a_line_diff_in_bounded_time():
    import time

    from nbdime import patch
    from nbdime.diff_format import DiffEntry

    from nbops.review.largecells import NOTE, diff_notebooks_bounded

    lines = [f"x_{i} = {i} * 2  # line {i}\n" for i in range(30_000)]
    old = "".join(lines)
    lines[15_000] = "changed = 1\n"
    cells = lambda big, small: [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "outputs": [],  # noqa: E731
                                 "execution_count": None, "source": s} for i, s in enumerate(["a = 1", big, small])]
    base = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells(old, "b = 1")}
    head = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells("".join(lines), "b = 2")}
    start = time.perf_counter()
    review = review_notebook(NotebookChange("modified", "big.ipynb", base=base, head=head))
    assert time.perf_counter() - start < 20  # nbdime alone: > 500 s
    big, small = review.cells
    assert (big.head_cell, big.kind, big.note) == (2, "modified", NOTE)
    assert "-x_15000 = 15000 * 2  # line 15000" in big.diff and "+changed = 1" in big.diff
    assert (small.head_cell, small.note) == (3, None) and "+b = 2" in small.diff
    text = render_markdown([review], "a", "b")
    assert NOTE in text and "1 cell(s) diffed by lines" in text
    # the diff the page gets is nbdime's format: nbdime's own patch turns base into head
    diff = diff_notebooks_bounded(base, head)[0]
    patched = patch(base, json.loads(json.dumps(diff), object_hook=lambda o: DiffEntry(o) if "op" in o else o))
    assert [c["source"] for c in patched["cells"]] == [c["source"] for c in head["cells"]]


def test_bad_ref_is_a_clear_error(project, capsys):
    assert main(["review", "--base", "no-such-ref", "--out", "D"]) == 2
    assert "git diff" in capsys.readouterr().err


def test_metric_changes_are_marked_by_direction_gates_shown_and_records_kept_apart():
    from nbops.core.gates import parse_gate
    from nbops.notebook.document import ModelSpec
    from nbops.review.results import results_lines

    model = ModelSpec("m", gates=(parse_gate("accuracy >= 0.9"), parse_gate("latency_ms <= 50")),
                      compare="log_loss", higher_is_better=False)
    head = {"accuracy": 0.85, "latency_ms": 40.0, "log_loss": 0.3, "epochs": 7, "note": "a | b", "curve": [1, 2]}
    base = {"accuracy": 0.95, "latency_ms": 45.0, "log_loss": 0.4, "epochs": 5}
    lines = results_lines("ok", "run abc at base", head, base, model)
    text = "\n".join(lines)
    assert "| accuracy ↑ | 0.95 | 0.85 | -0.1 **worse** |" in lines
    assert "| latency_ms ↓ | 45 | 40 | -5 better |" in lines
    assert "| log_loss (compare) ↓ | 0.4 | 0.3 | -0.1 better |" in lines
    assert "| epochs | 5 | 7 | +2 |" in lines  # no direction known: no judgement
    assert "- gate `accuracy >= 0.9`: **FAILS** (accuracy = 0.85)" in lines
    assert "- gate `latency_ms <= 50`: holds" in lines
    records = text[text.index("Records that are not metrics"):]
    assert "- `curve`: `[1, 2]`" in records and "- `note`: `'a | b'`" in records
    assert "note" not in text[:text.index("Records")]


@pytest.mark.timeout(120)
def test_many_changed_cells_without_ids_are_aligned_in_bounded_time():
    """nbformat < 4.5 cells have no ids, so nbdime compares every changed cell with every other
    by characters: 20 cells of 80 lines took 163 s. Past a budget they are diffed by lines."""
    import time

    def nb(sources):
        return {"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s}
            for s in sources]}

    base = ["".join(f"v{k}_{i} = compute({i}, {k})  # note\n" for i in range(80)) for k in range(30)]
    head = [s.replace("compute(40,", "compute2(40,") for s in base]
    start = time.perf_counter()
    review = review_notebook(NotebookChange("modified", "old.ipynb", base=nb(base), head=nb(head)))
    assert time.perf_counter() - start < 30
    assert [(c.kind, c.base_cell, c.head_cell) for c in review.cells] == [("modified", k, k) for k in range(1, 31)]
    assert all("-v{0}_40 = compute(40, {0})".format(k - 1) in c.diff for k, c in enumerate(review.cells, 1))


# --- what changed in how a notebook is judged (issue 23) -----------------------------------------

JUDGED = "What changed in how this notebook is judged"
GATED = {"model": {"name": "exp-model", "gates": ["accuracy >= 0.8", "latency_ms <= 50"], "compare": "accuracy"},
         "resources": {"gpu": 0}}


def _judged_items(md: str, path: str) -> list[str]:
    """The list items of PATH's judged block, as CommonMark text (code spans as their content)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(md)
    start = next(i for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h4"
                 and tokens[i + 1].content == f"`{path}`")
    title = next(i for i in range(start, len(tokens)) if tokens[i].type == "inline" and JUDGED in tokens[i].content)
    assert [c.type for c in tokens[title].children if c.content or c.type != "text"] == [
        "strong_open", "text", "strong_close"]  # a paragraph of its own, bold
    assert tokens[title + 2].type == "bullet_list_open"  # the paragraph, then its list
    items = []
    for t in tokens[title + 3:]:
        if t.type == "bullet_list_close":
            return items
        if t.type == "inline":
            items.append("".join(c.content for c in t.children or [] if c.type in ("text", "code_inline")))
    raise AssertionError("the judged list is not closed")


def test_a_metadata_only_change_is_listed_and_a_loosened_gate_flagged(project, capsys):
    """The commit of issue 23: gate 0.8 -> 0.1, 4 GPUs, another kernel. It read "0 cell(s) added,
    0 removed, 0 modified" and nothing else."""
    path = write_notebook(project / "notebooks" / "exp.ipynb",
                          [("code", "C = 1.0\nseed = 0", ["parameters"]), ("code", "print(C)")], GATED)
    commit_all(project, "base")
    nb = json.loads(path.read_text())
    nb["metadata"]["nbops"]["model"]["gates"] = ["accuracy >= 0.1", "latency_ms <= 50"]
    nb["metadata"]["nbops"]["resources"]["gpu"] = 4
    nb["metadata"]["kernelspec"] = {"name": "py312-cuda", "display_name": "CUDA", "language": "python"}
    path.write_text(json.dumps(nb))
    commit_all(project, "head")

    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0
    md = (project / "D" / "review.md").read_text()
    summary = next(line for line in md.splitlines() if line.startswith("- `notebooks/exp.ipynb`"))
    assert summary.startswith("- `notebooks/exp.ipynb` (modified): 0 cell(s) added, 0 removed, 0 modified; ")
    assert "3 change(s) in how it is judged (**⚠ 1 loosened gate(s)**)" in summary
    items = _judged_items(md, "notebooks/exp.ipynb")
    assert items == ["⚠ loosened gate: accuracy >= 0.8 -> accuracy >= 0.1", "resources: gpu: 0 -> 4",
                     "kernel: python3 -> py312-cuda"]
    assert "**⚠ loosened gate**: `accuracy >= 0.8 -> accuracy >= 0.1`" in md
    assert md.index("### Changes per notebook") < md.index(JUDGED)
    assert "latency_ms" not in md  # an unchanged gate says nothing
    _fences(md)  # valid CommonMark, no raw HTML but the marker


def test_parameter_defaults_and_tightened_gates_are_listed_without_a_risk():
    base = json.loads(write_notebook_text([("code", "C = 1.0  # strength\nseed = 0", ["parameters"])], GATED))
    head = json.loads(json.dumps(base))
    head["cells"][0]["source"] = "C = 0.5  # strength\nseed = 0"
    head["metadata"]["nbops"]["model"] = {"name": "exp-model", "compare": "f1",
                                          "gates": ["accuracy > 0.8", "latency_ms <= 20", "f1 >= 0.7"]}
    head["metadata"]["nbops"]["data"] = ["data/train.csv"]
    review = review_notebook(NotebookChange("modified", "nb.ipynb", base=base, head=head))
    assert [str(j) for j in review.judged] == [
        "tightened gate: accuracy >= 0.8 -> accuracy > 0.8", "tightened gate: latency_ms <= 50 -> latency_ms <= 20",
        "gate added: (new) -> f1 >= 0.7", "model: compare: accuracy -> f1", "parameter: C: 1.0 -> 0.5",
        "data: (new) -> data/train.csv"]
    assert review.risks() == []
    md = render_markdown([review], "a", "b")
    assert "⚠" not in md and "loosened" not in md
    assert _judged_items(md, "nb.ipynb")[4] == "parameter: C: 1.0 -> 0.5"
    assert md.index(JUDGED) < md.index("**cell 1, code, modified**")  # the block opens the section


def write_notebook_text(cells, nbops) -> str:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        return write_notebook(Path(tmp) / "n.ipynb", cells, nbops).read_text()


@pytest.mark.parametrize("old,new,risk", [
    ("accuracy >= 0.8", "accuracy >= 0.1", True),
    ("accuracy > 0.8", "accuracy >= 0.8", True),  # the threshold itself now passes
    ("accuracy >= 0.8", "accuracy > 0.7", True),
    ("loss <= 0.5", "loss <= 0.9", True),
    ("loss < 0.5", "loss <= 0.5", True),
    ("accuracy >= 0.8", None, True),  # removed
    ("accuracy >= 0.8", "accuracy >= 0.9", False),
    ("accuracy >= 0.8", "accuracy > 0.8", False),
    ("loss <= 0.5", "loss < 0.2", False),
    (None, "f1 >= 0.5", False),  # added
    ("n == 3", "n == 4", False),
])
def test_a_gate_is_loosened_when_a_worse_run_may_pass(old, new, risk):
    from nbops.review.judged import gate_changes

    found = gate_changes([old] if old else [], [new] if new else [])
    assert len(found) == 1 and found[0].risk is risk
    assert found[0].what.startswith("loosened") is risk


def test_gates_moved_across_metrics_sides_and_test_expectations():
    from nbops.review.judged import judged_changes

    def nb(meta, kernel=None):
        return {"metadata": {"nbops": meta, **({"kernelspec": {"name": kernel}} if kernel else {})}, "cells": []}

    found = judged_changes(
        nb({"model": {"name": "m", "gates": ["accuracy >= 0.8", "loss <= 1"]}, "test": {"expect": ["f1 >= 0.7"]}}),
        nb({"model": {"name": "m", "gates": ["loss <= 1", "accuracy <= 0.8", "auc >= 0.5"]},
            "test": {"expect": ["f1 >= 0.2"]}, "template": "other"}))
    assert [str(j) for j in found] == [
        "⚠ loosened gate: accuracy >= 0.8 -> (removed)",  # an upper bound does not replace a lower one
        "⚠ loosened test expectation: f1 >= 0.7 -> f1 >= 0.2",
        "gate added: (new) -> accuracy <= 0.8", "gate added: (new) -> auc >= 0.5",
        "metadata.nbops: template: (unset) -> other"]
    assert [str(j) for j in judged_changes(nb({}, "python3"), nb({}, "ir"))] == ["kernel: python3 -> ir"]
    assert [str(j) for j in judged_changes(nb({"model": {"name": "m", "gates": ["acc >= 0.8"]}}), nb({}))] == [
        "⚠ loosened gate: acc >= 0.8 -> (removed)", "model: name: m -> (unset)"]


def test_the_judged_block_keeps_its_room_when_diffs_fill_the_comment():
    big = _added("nb/big.ipynb", [f"print({j})\n" * 400 for j in range(40)])
    base = {"nbformat": 4, "nbformat_minor": 5, "cells": [],
            "metadata": {"nbops": {"model": {"name": "m", "gates": ["accuracy >= 0.8"]}}}}
    head = json.loads(json.dumps(base))
    head["metadata"]["nbops"]["model"]["gates"] = ["accuracy >= 0.5"]
    quiet = review_notebook(NotebookChange("modified", "nb/quiet.ipynb", base=base, head=head))
    text = render_markdown([big, quiet], "a", "b", limit=20_000)
    assert len(text) <= 20_000 and "**Left out for length**" in text
    assert _judged_items(text, "nb/quiet.ipynb") == ["⚠ loosened gate: accuracy >= 0.8 -> accuracy >= 0.5"]


def test_with_hundreds_of_judged_changes_the_risks_are_kept():
    reviews = []
    for i in range(100):
        base = {"nbformat": 4, "nbformat_minor": 5, "cells": [],
                "metadata": {"nbops": {"model": {"name": "m", "gates": ["accuracy >= 0.8"]}}}}
        head = json.loads(json.dumps(base))
        head["metadata"]["nbops"]["model"]["gates"] = ["accuracy >= 0.5"]
        head["metadata"]["nbops"]["data"] = [f"data/part-{j:03d}.csv" for j in range(40)]
        reviews.append(review_notebook(NotebookChange("modified", f"nb/{i:03d}.ipynb", base=base, head=head)))
    text = render_markdown(reviews, "a", "b")
    assert len(text) <= 60_000 and "data/part-039.csv" not in text  # 4,100 changes do not fit
    for i in range(100):
        items = _judged_items(text, f"nb/{i:03d}.ipynb")
        assert items[0] == "⚠ loosened gate: accuracy >= 0.8 -> accuracy >= 0.5"
        assert items[1].startswith("… and 40 more change(s): see ")


def test_the_terminal_and_index_say_a_loosened_gate_too(project, capsys):
    """Issue 23: `nbops review` printed only where review.md went; index.html had no judged block."""
    path = write_notebook(project / "notebooks" / "exp.ipynb",
                          [("code", "C = 1.0", ["parameters"]), ("code", "print(C)")], GATED)
    commit_all(project, "base")
    nb = json.loads(path.read_text())
    nb["metadata"]["nbops"]["model"]["gates"] = ["accuracy >= 0.1", "latency_ms <= 50"]
    nb["metadata"]["nbops"]["resources"]["gpu"] = 4
    path.write_text(json.dumps(nb))
    commit_all(project, "head")
    capsys.readouterr()
    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0
    out = capsys.readouterr().out
    assert "notebooks/exp.ipynb: What changed in how it is judged (⚠ 1 risk(s)):" in out
    assert "  ⚠ RISK loosened gate: accuracy >= 0.8 -> accuracy >= 0.1" in out
    assert "  resources: gpu: 0 -> 4" in out
    index = (project / "D" / "index.html").read_text()
    assert '<li class="risk">⚠ RISK loosened gate: accuracy &gt;= 0.8 -&gt; accuracy &gt;= 0.1</li>' in index
    assert "<li>resources: gpu: 0 -&gt; 4</li>" in index
    page = (project / "D" / "notebooks__exp.ipynb.html").read_text()
    assert "⚠ loosened gate: accuracy &gt;= 0.8 -&gt; accuracy &gt;= 0.1" in page  # shown first there


def test_a_page_without_cell_ids_gets_null_ids_and_its_changes_first():
    """Issue 26: nbdime labels a cell "Cell ID: undefined" unless its id is null."""
    from nbops.review.htmlpage import render_diff_page, without_undefined_ids

    base = {"cells": [{"cell_type": "code", "source": "a = 1", "metadata": {}, "outputs": []},
                      {"cell_type": "code", "id": "kept", "source": "b", "metadata": {}, "outputs": []},
                      {"cell_type": "code", "source": "c", "metadata": {}, "outputs": []}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 1}
    diff = [{"op": "patch", "key": "cells", "diff": [
        {"op": "addrange", "key": 1, "valuelist": [{"cell_type": "markdown", "source": "<!-- x", "metadata": {}}]},
        {"op": "patch", "key": 2, "diff": [{"op": "add", "key": "id", "value": "new"}]}]}]
    shown, shown_diff = without_undefined_ids(base, diff)
    assert [c.get("id", "absent") for c in shown["cells"]] == [None, "kept", "absent"]
    assert shown_diff[0]["diff"][0]["valuelist"][0]["id"] is None
    assert "id" not in base["cells"][0]  # the inputs are left as they were
    page = render_diff_page(base, base, "b", "h", "t", diff=[],
                            changes=[("cell 1, code, modified", "-a = 1\n+a = <script>2")])
    assert page.index('id="nbops-changes"') < page.index('id="nbdime-root"')
    assert '<span class="a">+a = &lt;script&gt;2</span>' in page


def test_a_page_shows_a_changed_metadata_key_as_its_whole_new_value():
    """nbdime's app failed on a patch nested in the notebook's metadata (a gate edited in
    metadata.nbops.model.gates): the page showed no diff. Such a key is replaced whole; an added
    or removed key, and the cells' diff, stay as nbdime made them."""
    from nbdime import diff_notebooks

    from nbops.review.htmlpage import whole_metadata_values

    base = {"cells": [], "metadata": {"nbops": {"model": {"gates": ["accuracy >= 0.8"]}}, "old": 1},
            "nbformat": 4, "nbformat_minor": 5}
    head = {**base, "metadata": {"nbops": {"model": {"gates": ["accuracy >= 0.1"]}}, "new": 2}}
    diff = diff_notebooks(base, head)
    before = json.dumps(diff)
    [meta] = [d for d in whole_metadata_values(head, diff) if d["key"] == "metadata"]
    ops = {op["key"]: op for op in meta["diff"]}
    assert ops["nbops"] == {"op": "replace", "key": "nbops", "value": head["metadata"]["nbops"]}
    assert ops["new"]["op"] == "add" and ops["old"]["op"] == "remove"
    assert json.dumps(diff) == before  # the input is left as it was


def test_a_renamed_and_edited_notebook_is_one_rename_unrelated_ones_are_not(project):
    """Issue 23: a rename below git's 90% similarity showed as a delete and an add."""
    cells = [("markdown", "# Churn")] + [("code", f"step_{i} = load({i})\nprint(step_{i})") for i in range(8)]
    write_notebook(project / "notebooks" / "churn.ipynb", cells)
    write_notebook(project / "notebooks" / "old_report.ipynb", [("code", "import os\nprint(os.getcwd())")])
    commit_all(project, "base")
    git(project, "mv", "notebooks/churn.ipynb", "notebooks/churn_model.ipynb")
    path = project / "notebooks" / "churn_model.ipynb"
    nb = json.loads(path.read_text())
    for cell in nb["cells"][1:4]:
        cell["source"] = cell["source"].replace("load(", "load_v2(").replace("print(", "show(")
    path.write_text(json.dumps(nb))
    (project / "notebooks" / "old_report.ipynb").unlink()
    write_notebook(project / "notebooks" / "new_plot.ipynb", [("code", "import matplotlib\nmatplotlib.use('agg')")])
    commit_all(project, "head")
    statuses = git(project, "diff", "--name-status", "--find-renames=90%", "HEAD~1", "HEAD").split()
    assert not any(s.startswith("R") for s in statuses)  # git alone: a delete and an add

    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0
    md = (project / "D" / "review.md").read_text()
    assert ("`notebooks/churn.ipynb` → `notebooks/churn_model.ipynb` (renamed): "
            "0 cell(s) added, 0 removed, 3 modified") in md
    assert "`notebooks/old_report.ipynb` (deleted)" in md and "`notebooks/new_plot.ipynb` (added)" in md
