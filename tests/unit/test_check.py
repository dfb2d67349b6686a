"""`nbops check` on notebooks with known problems, on this repo, and with --fix: in-process, no kernel."""

from __future__ import annotations

import json

import pytest

from nbops.cli.main import main
from nbops.review.check import run_check
from tests.conftest import REPO, write_notebook

CELLS = [
    ("markdown", "# Problems"),                                                   # 1
    ("code", "import numpy as np\nx = np.random.rand(3)"),                        # 2 NB003 (+NB001)
    ("code", "from sklearn.model_selection import train_test_split\n"
             "a, b = train_test_split([1, 2, 3, 4])"),                           # 3 NB003
    ("code", 'df_path = "/home/alice/data.csv"\nprint(df_path)'),                 # 4 NB004
    ("code", 'api_key = "abcd1234efgh"\naws = "AKIAABCDEFGHIJKLMNOP"\nprint(api_key, aws)'),  # 5 NB005 x2
    ("code", "import os"),                                                        # 6 ruff F401
    ("code", "np.random.seed(0)\ny = np.random.rand(2)\nprint(y)"),               # 7 clean: seeded
    ("code", 'other = "~/data.csv"  # nbops: ignore[NB004]\nprint(other)'),       # 8 silenced
    ("code", 'tokenizer = "bert-base"\nprint(tokenizer, x, a, b)'),               # 9 clean
]


def problem_notebook(root):
    path = write_notebook(root / "notebooks" / "problems.ipynb", CELLS)
    nb = json.loads(path.read_text())
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x\n"}]
    nb["cells"][1]["execution_count"] = 1
    path.write_text(json.dumps(nb))
    return path


def test_each_problem_is_reported_at_its_cell(project):
    problem_notebook(project)
    found = {(f.cell, f.code) for f in run_check(project, [], ("notebooks", "templates"))}
    assert found == {
        (None, "NB002"), (2, "NB001"), (2, "NB003"), (3, "NB003"), (4, "NB004"), (5, "NB005"),
        (6, "F401"),
    }
    nb5 = [f for f in run_check(project, [], ("notebooks",)) if f.code == "NB005"]
    assert len(nb5) == 2


def test_cli_prints_path_cell_code_message_and_exits_1(project, capsys):
    problem_notebook(project)
    assert main(["check", "notebooks"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "notebooks/problems.ipynb:cell 3: NB003 train_test_split(...) without random_state" in out
    assert any(line.startswith("notebooks/problems.ipynb:cell 6: F401 ") for line in out)
    assert main(["check", "--format", "json", "notebooks"]) == 1
    items = json.loads(capsys.readouterr().out)
    assert {"path": "notebooks/problems.ipynb", "cell": 4, "code": "NB004"}.items() <= items[
        [i["code"] for i in items].index("NB004")].items()


def test_fix_strips_outputs_keeps_ids_and_metadata(project, capsys):
    path = problem_notebook(project)
    raw = json.loads(path.read_text())
    raw["metadata"]["nbops"] = {"model": {"name": "m"}}
    path.write_text(json.dumps(raw))
    assert main(["check", "--fix", "--no-lint", str(path)]) == 1  # other problems remain
    fixed = json.loads(path.read_text())
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in fixed["cells"] if c["cell_type"] == "code")
    assert [c["id"] for c in fixed["cells"]] == [c["id"] for c in raw["cells"]]
    assert fixed["metadata"]["nbops"] == {"model": {"name": "m"}}
    assert "NB001" not in capsys.readouterr().out


def test_unreadable_notebook_is_a_finding_not_a_crash(project, capsys):
    (project / "notebooks").mkdir()
    (project / "notebooks" / "broken.ipynb").write_text("{oops")
    write_notebook(project / "notebooks" / "fine.ipynb", [("code", "seed = 1", ["parameters"])])
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "notebooks/broken.ipynb: NB000 not valid JSON" in out and "fine.ipynb" not in out


@pytest.mark.parametrize("folder", ["notebooks", "templates"])
def test_repo_notebooks_and_templates_are_clean(folder):
    assert run_check(REPO, [str(REPO / folder)], ("notebooks", "templates")) == []
