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
        (None, "NB002"), (None, "NB001"), (2, "NB003"), (3, "NB003"), (4, "NB004"), (5, "NB005"),
        (6, "F401"),
    }
    nb5 = [f for f in run_check(project, [], ("notebooks",)) if f.code == "NB005"]
    assert len(nb5) == 2


def test_cli_prints_path_cell_code_message_and_exits_1(project, capsys):
    problem_notebook(project)
    assert main(["check", "notebooks"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "notebooks/problems.ipynb:cell 3:line 2: NB003 train_test_split(...) without random_state" in out
    assert any(line.startswith("notebooks/problems.ipynb:cell 6:line 1: F401 ") for line in out)
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


# --- NB003 per generator ------------------------------------------------------------------------

NB003_FOUND = {  # cell -> the one message expected
    "import numpy as np\nrng = np.random.default_rng(1701)\nx = np.random.rand(3)":
        "np.random.rand() before any np.random.seed(...)",
    "import random\nrandom.seed(1)\nimport numpy as np\nx = np.random.normal()":
        "np.random.normal() before any np.random.seed(...)",
    "import numpy as np\nnp.random.seed(0)\nimport random\nrandom.shuffle(xs)":
        "random.shuffle() before any random.seed(...)",
    "from numpy.random import randn\nx = randn(3)": "randn() before any np.random.seed(...)",
    "import numpy.random as npr\nx = npr.uniform()": "npr.uniform() before any np.random.seed(...)",
    "import torch\nimport numpy as np\nnp.random.seed(0)\nx = torch.rand(2)":
        "torch.rand() before any torch.manual_seed(...)",
    "import tensorflow as tf\ntf.random.set_seed(0)\nx = np.random.rand(2)":
        "np.random.rand() before any np.random.seed(...)",
    "from sklearn.datasets import make_classification\nX, y = make_classification(n_samples=100)":
        "make_classification(...) without random_state",
    "from sklearn import datasets\nX, y = datasets.make_blobs(n_samples=10)":
        "datasets.make_blobs(...) without random_state",
    "from sklearn.decomposition import PCA\np = PCA(n_components=2, svd_solver='randomized')":
        "PCA(svd_solver='randomized') without random_state",
    "from sklearn.utils import shuffle\nX = shuffle(X)": "shuffle(...) without random_state",
    "rng = np.random.default_rng()": "np.random.default_rng() without a seed",
}
NB003_CLEAN = [
    "import numpy as np\nrng = np.random.default_rng(1701)\nx = rng.normal(size=3)",
    "from numpy.random import randn, seed\nseed(0)\nx = randn(3)",
    "import random\nrandom.seed(1)\nx = random.random()",
    "from nbops.kit import seed_everything\nseed_everything(0)\nimport numpy as np\nimport random\n"
    "x = np.random.rand(1) + random.random()",
    "from transformers import set_seed\nset_seed(1)\nimport torch\nx = torch.randn(2)",
    "import torch\ntorch.manual_seed(0)\nx = torch.randn(2)",
    "X, y = make_classification(n_samples=10, random_state=0)",
    "from sklearn.decomposition import PCA\np = PCA(n_components=2)",
    "p = PCA(n_components=2, svd_solver='randomized', random_state=0)",
    "import numpy as np\nnp.random.seed(0)\nX, y = make_classification(n_samples=10)",
    "from sklearn.model_selection import KFold\nk = KFold(5)",
]


def _codes(source: str, code: str) -> list[str]:
    from nbops.review.check import code_findings

    return [message for _, c, message, _line in code_findings([(1, source)]) if c == code]


@pytest.mark.parametrize("source", list(NB003_FOUND))
def test_nb003_names_the_unseeded_generator(source):
    assert _codes(source, "NB003") == [NB003_FOUND[source]]


@pytest.mark.parametrize("source", NB003_CLEAN)
def test_nb003_takes_each_seed_for_its_own_generator(source):
    assert _codes(source, "NB003") == []


def test_nb003_seed_in_an_earlier_cell_counts_and_imports_carry_over():
    from nbops.review.check import code_findings

    cells = [(1, "from numpy.random import randn, seed"), (2, "seed(3)"), (3, "x = randn(2)"),
             (4, "import random"), (5, "y = random.choice([1, 2])")]
    assert [(n, m, line) for n, c, m, line in code_findings(cells) if c == "NB003"] == [
        (5, "random.choice() before any random.seed(...)", 1)]


# --- NB004 routes, NB002 layout, NB001 editor state ----------------------------------------------

@pytest.mark.parametrize("source", [
    '@app.route("/api/<int:id>")\ndef item(id):\n    return id',
    '@app.route("/data/<int:id>")\ndef item(id):\n    return id',
    '@app.get("/data/items")\ndef items():\n    return []',
    'app.add_url_rule("/tmp/upload", view_func=f)',
    'urlpatterns = [path("/data/list", view)]',
])
def test_nb004_leaves_web_routes_alone(source):
    assert _codes(source, "NB004") == []


def test_nb004_still_finds_file_paths():
    assert len(_codes('df = pd.read_csv("/data/train.csv")\nopen("/home/alice/x.txt")', "NB004")) == 2


def test_nb002_only_where_the_project_uses_nbops_layout(tmp_path):
    bare = tmp_path / "other"
    write_notebook(bare / "notebooks" / "analysis.ipynb", [("code", "x = 1")])
    (bare / "pyproject.toml").write_text('[project]\nname = "other"\n\n[tool.ruff]\nline-length = 100\n')
    assert run_check(bare, [], ("notebooks", "templates"), lint=False) == []
    (bare / "templates").mkdir()  # nbops's folders
    assert [f.code for f in run_check(bare, [], ("notebooks", "templates"), lint=False)] == ["NB002"]
    configured = tmp_path / "configured"
    write_notebook(configured / "notebooks" / "analysis.ipynb", [("code", "x = 1")])
    (configured / "pyproject.toml").write_text('[tool.nbops.runners]\ncpu = "ubuntu-latest"\n')
    assert [f.code for f in run_check(configured, [], ("notebooks", "templates"), lint=False)] == ["NB002"]


def test_nb001_reports_what_nbstripout_strips_beyond_outputs(tmp_path):
    from nbops.review.check import check_notebook

    path = write_notebook(tmp_path / "n.ipynb", [("code", "x = 1"), ("markdown", "# h")])
    nb = json.loads(path.read_text())
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb["cells"][0]["metadata"] = {"collapsed": True, "scrolled": True,
                                  "execution": {"iopub.execute_input": "2024-01-01T00:00:00Z"}}
    nb["cells"][1]["metadata"] = {"heading_collapsed": True}
    found = [(f.cell, f.message.split(";")[0]) for f in check_notebook(nb, "n.ipynb", needs_parameters=False)]
    assert found == [(None, "committed outputs, execution counts or editor state in 2 cells (1, 2)"
                            " and the notebook (has metadata.widgets)")]
    nb["cells"][0]["metadata"] = {"tags": ["keep_output"]}  # nbstripout keeps these outputs
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    nb["cells"][1]["metadata"], nb["metadata"] = {}, {}
    assert check_notebook(nb, "n.ipynb", needs_parameters=False) == []


# --- one secret rule set: NB005 and the parameters nbops never stores ---------------------------

NAMES = ["password", "db_password", "DB_PASS", "dbPassword", "api_key", "apikey", "client_secret", "token",
         "hf_token", "access_key", "private_key", "credentials", "secret", "bearer",
         "TOKEN_URL", "token_pattern", "tokenizer", "max_tokens", "secret_name", "n_tokens", "password_hint_url",
         "auth_method", "keyword", "monkey"]


@pytest.mark.parametrize("name", NAMES)
def test_check_and_parameter_masking_agree_on_every_name(name):
    from nbops.core.secrets import is_secret_name

    flagged = bool(_codes(f'{name} = "a8f5f167f44f"', "NB005"))
    assert flagged == is_secret_name(name)
    assert is_secret_name("TOKEN_URL") is False and is_secret_name("token_pattern") is False


def test_parameter_values_masked_by_the_same_credential_shapes():
    from nbops.core.secrets import is_secret_value, secret_names

    values = {"db": "postgresql://user:S3cr3t@host/db", "url": "postgresql://user@host/db",
              "key": "AKIAABCDEFGHIJKLMNOP", "TOKEN_URL": "https://auth.example.com/token", "lr": 0.1,
              "password": "", "token_pattern": r"\w+"}
    assert secret_names(values) == ("db", "key", "password")
    assert is_secret_value("sk-xxxxxxxxxxxxxxxxxxxxxxxx") is False  # a stand-in


# --- the git filter process (gitattributes(5): long-running filter protocol) ---------------------

def _pkt(data: bytes | None) -> bytes:
    return b"0000" if data is None else b"%04x" % (len(data) + 4) + data


def _pkts(stream, count):
    out = []
    for _ in range(count):
        size = int(stream.read(4), 16)
        out.append(None if size == 0 else stream.read(size - 4))
    return out


def test_filter_process_cleans_large_notebooks_and_passes_smudge_through(tmp_path):
    import io

    from nbops.notebook.strip import serve_git_filter, strip_text

    path = write_notebook(tmp_path / "n.ipynb", [("code", "x = 1")])
    nb = json.loads(path.read_text())
    nb["metadata"]["widgets"] = {"state": "w" * 200_000}  # several pkt-lines each way
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "y" * 100_000}]
    text = json.dumps(nb).encode()
    chunks = [text[i:i + 65516] for i in range(0, len(text), 65516)]
    request = b"".join([
        _pkt(b"git-filter-client\n"), _pkt(b"version=2\n"), _pkt(None),
        _pkt(b"capability=clean\n"), _pkt(b"capability=smudge\n"), _pkt(b"capability=delay\n"), _pkt(None),
        _pkt(b"command=clean\n"), _pkt(b"pathname=n.ipynb\n"), _pkt(None), *map(_pkt, chunks), _pkt(None),
        _pkt(b"command=smudge\n"), _pkt(b"pathname=n.ipynb\n"), _pkt(None), _pkt(b"as is"), _pkt(None),
        _pkt(b"command=clean\n"), _pkt(b"pathname=bad.ipynb\n"), _pkt(None), _pkt(b"{oops"), _pkt(None),
    ])
    out, err = io.BytesIO(), io.StringIO()
    serve_git_filter(io.BytesIO(request), out, err)
    out.seek(0)
    assert _pkts(out, 3) == [b"git-filter-server\n", b"version=2\n", None]
    assert _pkts(out, 3) == [b"capability=clean\n", b"capability=smudge\n", None]  # no delay
    assert _pkts(out, 2) == [b"status=success\n", None]
    content = b""
    while (pkt := _pkts(out, 1)[0]) is not None:
        assert len(pkt) <= 65516
        content += pkt
    assert content.decode() == strip_text(text.decode()) and b"yyy" not in content
    assert _pkts(out, 1) == [None]
    assert _pkts(out, 5) == [b"status=success\n", None, b"as is", None, None]
    assert _pkts(out, 2) == [b"status=error\n", None] and out.read() == b""
    assert err.getvalue() == "nbops strip: bad.ipynb: not valid JSON\n"


# --- NB005 for environment variables set in IPython magics (issue 22) ----------------------------

ENV_SECRETS = {  # cell -> the variable NB005 names
    "%env AWS_SECRET_ACCESS_KEY=abc123": "AWS_SECRET_ACCESS_KEY",
    "%env MLFLOW_TRACKING_PASSWORD xyz": "MLFLOW_TRACKING_PASSWORD",  # short, and the space form
    "%env MLFLOW_TRACKING_PASSWORD=xyz": "MLFLOW_TRACKING_PASSWORD",
    "%set_env DB_PASSWORD=pw": "DB_PASSWORD",
    "%set_env HF_TOKEN hf_abc": "HF_TOKEN",
    "import os\n%env GH_TOKEN = 'abcdef'\nprint(os.environ['GH_TOKEN'])": "GH_TOKEN",
    "%env DATABASE_URL=postgresql://app:S3cr3t@db/prod": "DATABASE_URL",  # any name, a credential's shape
    "%%bash\nexport DB_PASSWORD=abc": "DB_PASSWORD",
    'get_ipython().run_line_magic("env", "API_KEY=abc")': "API_KEY",  # a notebook saved as a script
    'os.environ["MLFLOW_TRACKING_PASSWORD"] = "xyz"': "MLFLOW_TRACKING_PASSWORD",
}
ENV_CLEAN = ["%env", "%env API_KEY", "%env API_KEY=$OTHER_KEY", "%env API_KEY={key}", "%env USE_TOKEN=1",
             "%env TOKENIZERS_PARALLELISM=false", "%env MLFLOW_TRACKING_URI=http://127.0.0.1:5000",
             "%env MLFLOW_TRACKING_PASSWORD=<your-password>", 'password = ""']


@pytest.mark.parametrize("source", list(ENV_SECRETS))
def test_nb005_finds_secrets_set_by_env_magics(source):
    [message] = _codes(source, "NB005")
    assert f"environment variable '{ENV_SECRETS[source]}' is set to a literal" in message


@pytest.mark.parametrize("source", ENV_CLEAN)
def test_nb005_leaves_env_magics_without_a_literal_secret_alone(source):
    assert _codes(source, "NB005") == []


def test_check_cli_fails_on_an_env_magic_secret(project, capsys):
    write_notebook(project / "notebooks" / "creds.ipynb",
                   [("code", "x = 1", ["parameters"]), ("code", "%env MLFLOW_TRACKING_PASSWORD xyz")])
    assert main(["check", "notebooks/creds.ipynb"]) == 1
    out = capsys.readouterr().out
    assert "notebooks/creds.ipynb:cell 2:line 1: NB005 environment variable 'MLFLOW_TRACKING_PASSWORD'" in out


# --- issue 23: lines, one NB001 per notebook, statement magics ----------------------------------

def test_findings_name_their_line_and_outputs_are_one_finding_per_notebook(project, capsys):
    cells = [("code", "x = 1", ["parameters"])] + [("code", f"print({i})") for i in range(40)]
    cells.append(("code", "import numpy as np\n\n# draw\ny = np.random.rand(3)"))
    path = write_notebook(project / "notebooks" / "many.ipynb", cells)
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"][1:41], 2):
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": f"{i}\n"}]
        cell["execution_count"] = i
    path.write_text(json.dumps(nb))
    assert main(["check", "notebooks/many.ipynb"]) == 1
    out = capsys.readouterr().out.splitlines()
    nb001 = [line for line in out if " NB001 " in line]
    assert nb001 == ["notebooks/many.ipynb: NB001 committed outputs, execution counts or editor state in "
                     "40 cells (2, 3, 4, 5, 6, 7, 8, 9, …); nbops check --fix strips them, as the git filter does"]
    assert "notebooks/many.ipynb:cell 42:line 4: NB003 np.random.rand() before any np.random.seed(...)" in out


@pytest.mark.parametrize("cells", [
    ["import pandas as pd\n%time df = pd.DataFrame({'a': [1]})", "print(df)"],
    ["import numpy as np", "%timeit -n 3 -r 1 total = np.sum([1, 2])\nprint(total)"],
    ["import os.path\n%time joined = os.path.join('a', 'b')", "%prun joined.upper()"],
])
def test_a_statement_magic_is_seen_as_its_statement(project, cells):
    write_notebook(project / "notebooks" / "magic.ipynb",
                   [("code", "seed = 0", ["parameters"])] + [("code", c) for c in cells])
    assert run_check(project, ["notebooks/magic.ipynb"], ("notebooks",)) == []


def test_a_statement_magic_still_draws_randomness():
    from nbops.review.check import code_findings

    found = code_findings([(1, "import numpy as np\n%time x = np.random.rand(3)")])
    assert [(c, line) for _, c, _m, line in found] == [("NB003", 2)]
