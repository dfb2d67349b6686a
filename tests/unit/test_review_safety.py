"""Hostile text stays text: the offline review page, rich output, and `nbops check` on what
people and pull requests put in notebooks (issue 11)."""

from __future__ import annotations

import io
import json
from collections import Counter
from html.parser import HTMLParser

from nbops.review.htmlpage import render_diff_page, script_json

HOSTILE = [
    "</SCRIPT><img src=x onerror=alert(1)>",
    "x = 1  # </script><script>alert(2)</script>",
    "<!-- a comment <script> that opens nothing </script> -->",
    "<script>alert(3)</script>",
    "line\u2028separator\u2029paragraph & <b>bold</b> > all",
    "</ScRiPt ><svg onload=alert(4)>",
]


def _notebook(sources: list[str]) -> dict:
    cells = [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": s,
              "outputs": [], "execution_count": None} for i, s in enumerate(sources)]
    cells.append({"cell_type": "markdown", "id": "md", "metadata": {}, "source": "# " + sources[0]})
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                          "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


class _Elements(HTMLParser):
    """Every start tag, and the text of each <script> by its id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.scripts: dict[str, str] = {}
        self._script: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        if tag == "script":
            self._script = dict(attrs).get("id") or f"anonymous-{self.tags[tag]}"
            self.scripts[self._script] = ""

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            self.scripts[self._script] += data


def _parse(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    parser.close()
    return parser


def test_script_json_has_no_markup_characters_and_round_trips():
    value = {"s": HOSTILE, "k<": "&amp; \u2028", "n": [1, 2.5, None, True]}
    text = script_json(value)
    for ch in "<>&\u2028\u2029":
        assert ch not in text
    assert "\\!" not in text  # `<\!--` is not a JSON escape (issue 12)
    assert json.loads(text) == value


def test_hostile_cells_inject_no_element_and_the_data_parses_back():
    base = _notebook(HOSTILE)
    head = _notebook([s + "\nprint('changed')" for s in HOSTILE])
    benign = _parse(render_diff_page(_notebook(["a"]), _notebook(["b"]), "base", "head", "t"))
    page = render_diff_page(base, head, "main:<b>x</b>", "head </script>", "PR <img src=y>")
    found = _parse(page)

    # the hostile page has exactly the template's elements: nothing the notebook wrote became one
    assert found.tags == benign.tags
    assert "img" not in found.tags and "svg" not in found.tags and "b" not in found.tags
    assert set(found.scripts) == set(benign.scripts)
    for ch in "<>&\u2028\u2029":
        assert ch not in found.scripts["nbops-diff-data"]
        assert ch not in found.scripts["nbdime-config-data"]
    data = json.loads(found.scripts["nbops-diff-data"])
    assert [c["source"] for c in data["base"]["cells"]][:len(HOSTILE)] == HOSTILE
    assert data["diff"], "the diff of the two notebooks is embedded"
    config = json.loads(found.scripts["nbdime-config-data"])
    assert config["base"] == "main:<b>x</b>" and config["remote"] == "head </script>"


# every character a notebook may hold, written as JSON escapes where JSON needs them (a lone
# surrogate "\\ud800" is valid JSON text and nbformat reads it back as such)
ANY_TEXT = [
    "<!-- a comment -->\n<!--[if IE]> x <![endif]-->",
    "</script><img src=x onerror=alert(1)>",
    "line\u2028separator\u2029paragraph",
    "lone \ud800 surrogate and \udfff",
    "emoji 🎉, rtl \u202e, nul \x00, bom \ufeff",
    "```\n    ```\n~~~",
]


def test_a_review_of_any_text_writes_pages_whose_data_parses_back_exactly(project):
    from nbdime import patch
    from nbdime.diff_format import DiffEntry

    from nbops.cli.main import main
    from tests.conftest import commit_all

    path = project / "notebooks" / "any.ipynb"
    path.parent.mkdir()
    base, head = _notebook(ANY_TEXT), _notebook([s + "\nchanged" for s in ANY_TEXT])
    path.write_text(json.dumps(base))  # ensure_ascii: "\ud800" stays an escape in the file
    commit_all(project, "base")
    path.write_text(json.dumps(head))
    commit_all(project, "head")
    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0

    page = (project / "D" / "notebooks__any.ipynb.html").read_bytes().decode("utf-8")  # valid UTF-8
    found = _parse(page)
    assert "img" not in found.tags
    data = json.loads(found.scripts["nbops-diff-data"])  # `<\!--` would not parse (issue 12)
    assert [c["source"] for c in data["base"]["cells"]] == [c["source"] for c in base["cells"]]
    shown = patch(data["base"], json.loads(json.dumps(data["diff"]),
                                           object_hook=lambda o: DiffEntry(o) if "op" in o else o))
    assert [c["source"] for c in shown["cells"]] == [c["source"] for c in head["cells"]]
    md = (project / "D" / "review.md").read_bytes().decode("utf-8")
    assert "lone \\ud800 surrogate" in md  # said as its escape, not written as broken UTF-8


def test_pages_of_a_review_share_one_web_app_file():
    page = render_diff_page(_notebook(["a"]), _notebook(["b"]), "base", "head", "t", app="nbdime-webapp-x.js")
    found = _parse(page)
    assert found.tags["script"] == 4  # config, data, the fetch shim, the shared app
    assert '<script src="nbdime-webapp-x.js"></script>' in page
    assert len(page) < 20_000  # the inlined app is ~4 MB
    config = json.loads(found.scripts["nbdime-config-data"])
    assert config["hideUnchanged"] is True  # nbdime's own option: unchanged cells hidden


def test_the_index_shows_hostile_paths_summaries_and_outputs_as_text():
    from nbops.review.changes import NotebookChange, NotebookReview
    from nbops.review.pages import render_index

    bad = "notebooks/<script>alert(1)</script>\"'&.ipynb"
    reviews = [NotebookReview(NotebookChange("added", bad), parameters=["x: <b> -> </td>"], html=bad + ".html",
                              outputs=["cell 1: <img src=x onerror=alert(2)>"]),
               NotebookReview(NotebookChange("modified", "b.ipynb", error="bad <!-- json"))]
    found = _parse(render_index(reviews, "<main>", "head\ud800"))
    assert set(found.tags) == {"html", "head", "meta", "title", "style", "body", "h2", "table", "tr", "th", "td", "a",
                               "br", "b"}
    assert found.scripts == {}


# --- rich: the user's text is printed as it is --------------------------------------------------

MARKUP = "[/x] boom [bold]"


def _console_text(renderable) -> str:
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(renderable)
    return buf.getvalue()


# issue 22: notebook HTML in the run report and review pages runs nothing and loads nothing

PAYLOADS = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "<svg onload=alert(3)><circle/></svg>",
    "<details open ontoggle=alert(4)><summary>s</summary>inside</details>",
    '<iframe src="data:text/html,<script>alert(5)</script>"></iframe>', '<a href="javascript:alert(6)">j</a>',
    '<a href=" JaVaScRiPt:alert(7)">j</a>', '<a href="data:text/html,<script>alert(8)</script>">d</a>',
    '<img src="http://127.0.0.1:9/remote.png" srcset="http://127.0.0.1:9/x 2x">',
    '<div style="color:red;position:fixed;background:url(http://127.0.0.1:9/bg)">styled</div>',
    "<form action=http://127.0.0.1:9><input name=q><button formaction=javascript:alert(9)>go</button></form>",
    '<meta http-equiv="refresh" content="0;url=http://127.0.0.1:9"><base href="http://127.0.0.1:9/">',
    "<link rel=stylesheet href=http://127.0.0.1:9/s.css><object data=http://127.0.0.1:9/o></object>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(10)>",  # mutation-XSS shape
]
# each opens a raw-text, RCDATA or comment state that would swallow every later cell of the page
OPENERS = ["<style>", "<textarea>", "<!--", "<title>", "<script>", "<xmp>", "<plaintext>", "<noscript>",
           "<iframe>", "<noembed>", "<noframes>", "<template>", "<select>", "<svg><style>", "<table><td>"]


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.found += [(tag, k, v or "") for k, v in attrs] or [(tag, "", "")]


def test_clean_html_drops_what_runs_or_loads_and_keeps_the_text():
    from nbops.core.sanitize import clean_html

    for payload in PAYLOADS:
        parser = _Attributes()
        parser.feed(clean_html(payload))
        for tag, name, value in parser.found:
            assert tag not in {"script", "style", "iframe", "svg", "form", "meta", "base", "link", "object",
                               "math", "input", "button"}, payload
            assert not name.startswith("on") and name not in {"srcset", "formaction", "action"}, payload
            if name in {"href", "src"}:
                assert not value.strip().lower().startswith(("javascript:", "data:text", "http")), payload
            if name == "style":
                assert "url(" not in value and "position" not in value, payload
    assert "inside" in clean_html(PAYLOADS[3]) and "<details>" in clean_html(PAYLOADS[3])
    assert clean_html(PAYLOADS[9]) == '<div style="color:red">styled</div>'
    png = '<img alt="p" src="data:image/png;base64,iVBORw0KGgo=">'
    assert clean_html(png) == png  # data: images (attachments, inline plots) stay


def test_an_unclosed_tag_stays_in_its_own_cell():
    from nbops.core.sanitize import clean_html

    for opener in OPENERS:
        cleaned = clean_html(f"{opener}main {{ display: none }} <b>x")
        lowered = cleaned.lower()
        for state in ("<style", "<textarea", "<!--", "<title", "<script", "<xmp", "<plaintext", "<noscript",
                      "<iframe", "<noembed", "<noframes", "<template", "<select"):
            assert state not in lowered, (opener, cleaned)
        if opener.startswith("<table"):
            assert lowered.count("<table") == lowered.count("</table>"), cleaned  # closed again


def _policy(page: str) -> dict[str, str]:
    import re

    [content] = re.findall(r'<meta content="([^"]*)" http-equiv="Content-Security-Policy"/?>|'
                           r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    text = "".join(content).replace("&#x27;", "'").replace("&#39;", "'")
    return {d.split()[0]: " ".join(d.split()[1:]) for d in text.split(";") if d.strip()}


def test_the_run_report_has_a_no_script_policy_first_and_no_script(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from nbops.run.render import render_html

    code = new_code_cell("x = 1", execution_count=1)
    code.outputs = [new_output("display_data", data={"text/html": p}) for p in PAYLOADS]
    code.outputs += [new_output("display_data", data={"application/javascript": "alert('js output')"}),
                     new_output("display_data", data={"text/vnd.mermaid": "graph TD; A</pre><script>alert(11)"}),
                     new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m"},
                                                      "text/plain": "IntSlider(value=3)"})]
    nb = new_notebook(cells=[*(new_markdown_cell(p) for p in PAYLOADS + OPENERS), code,
                             new_markdown_cell("LAST cell")])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "state": {}}}
    nbformat.write(nb, str(tmp_path / "hostile.ipynb"))
    page = render_html(tmp_path / "hostile.ipynb", tmp_path).read_text(encoding="utf-8")

    head = page[:page.index("</head>")]
    assert head.index("Content-Security-Policy") < min(head.index("<style"), head.index("<title"))
    policy = _policy(page)
    assert policy["default-src"] == "'none'" and "script-src" not in policy and policy["img-src"] == "data:"
    lowered = page[page.index("<body"):].lower()  # (the theme's CSS has `.validationErrors`)
    assert "<script" not in page.lower() and "<iframe" not in lowered and "javascript:" not in lowered
    assert "onerror" not in lowered and "onload" not in lowered and "127.0.0.1" not in lowered
    assert "<pre>alert('js output')</pre>" in page  # the JavaScript output shown as text
    assert "A&lt;/pre&gt;&lt;script&gt;" in page  # mermaid source escaped
    assert "IntSlider(value=3)" in page and "widget-state" not in page
    assert page.count("LAST cell") == 1 and page.count('class="jp-Cell ') == len(nb.cells)


def test_review_pages_let_only_their_own_scripts_run():
    import base64
    import hashlib
    import re

    from nbops.review.pages import render_index

    for app in (None, "nbdime-webapp-x.js"):
        page = render_diff_page(_notebook(HOSTILE), _notebook(["b"]), "base", "head", "t", app=app)
        script_src = _policy(page)["script-src"].split()
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
        inline = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)  # the runnable inline ones
        assert len(inline) == (2 if app is None else 1)  # the fetch shim (and the inlined app)
        hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
                  for s in inline}
        assert set(script_src) == hashes | ({"'self'"} if app else set())
        policy = _policy(page)
        assert policy["connect-src"] == "'none'" and policy["img-src"] == "data:"
        assert policy["default-src"] == "'none'"
    index = render_index([], "main", "head")
    assert "<script" not in index and _policy(index)["default-src"] == "'none'"


def test_live_progress_prints_markup_in_names_and_errors_literally():
    from nbops.run.progress import LiveProgress, PlainProgress

    buf = io.StringIO()
    progress = LiveProgress(buf)
    try:
        progress.started("[red]running.ipynb")
        progress.finished("[bold]nb.ipynb", False, 1.5, f"cell 2: ValueError: {MARKUP}")
        text = _console_text(progress._render())
    finally:
        progress.close()
    assert MARKUP in text and "[bold]nb.ipynb" in text and "[red]running.ipynb" in text

    plain = io.StringIO()
    PlainProgress(plain).finished("nb.ipynb", False, 1.0, MARKUP)
    assert plain.getvalue() == f"nbops: FAILED nb.ipynb in 1.0s: {MARKUP}\n"


def _outcome(tmp_path, records: dict, model_name: str | None = None):
    from nbops.notebook.document import load
    from nbops.run.engine import CellError, RunResult
    from nbops.run.runner import Outcome
    from nbops.run.spec import RunSpec
    from nbops.run.tracking import TrackedRun

    folder = tmp_path / "[red]notebooks"
    folder.mkdir(exist_ok=True)
    path = folder / "[bold]exp.ipynb"
    path.write_text(json.dumps(_notebook(["x = 1"])), encoding="utf-8")
    notebook = load(path)
    spec = RunSpec(notebook=notebook, overrides={}, values={}, output_path=tmp_path / "out.ipynb",
                   timeout=None, cell_timeout=None, kernel_name="python3", fingerprint="f")
    failed = model_name is None
    result = RunResult(spec=spec, status="failed" if failed else "succeeded",
                       output_path=tmp_path / "out.ipynb", duration=1.0, records=records,
                       error=CellError(2, "ValueError", MARKUP) if failed else None)
    tracked = TrackedRun(run_id="0123456789", experiment_id="1", status="FINISHED",
                         model_name=model_name, model_version="1" if model_name else None)
    return Outcome(result, tracked)


def test_summary_prints_markup_in_paths_errors_and_models_literally(tmp_path):
    from nbops.core.config import Settings
    from nbops.run.summary import print_summary

    settings = Settings(root=tmp_path)
    outcomes = [_outcome(tmp_path, {}), _outcome(tmp_path, {"acc": 0.5}, model_name="m[/x]")]
    buf = io.StringIO()
    print_summary(outcomes, settings, file=buf)
    text = buf.getvalue()
    assert text.count("│ [red]notebooks/[bold]exp.ipynb │") == 2
    assert "m[/x] v1" in text
    assert f"FAILED [red]notebooks/[bold]exp.ipynb: cell 2: ValueError: {MARKUP}" in text


def test_sweep_table_prints_markup_in_parameter_values_literally(tmp_path):
    from nbops.core.config import Settings
    from nbops.run.summary import print_sweep
    from nbops.run.sweep import SweepResult

    outcomes = [_outcome(tmp_path, {"acc": 0.9}, model_name="m"), _outcome(tmp_path, {})]
    result = SweepResult(notebook=outcomes[0].result.spec.notebook,
                         points=[{"tag": MARKUP}, {"tag": "[bold]b"}], outcomes=outcomes,
                         parent_run_id=None, best=0, metric="acc")
    buf = io.StringIO()
    print_sweep(result, Settings(root=tmp_path), file=buf)
    text = buf.getvalue()
    assert f"tag='{MARKUP}'" in text and "tag='[bold]b'" in text
    assert f"best: point 1 (tag='{MARKUP}')" in text


# --- nbops check: hard-coded secrets (NB005) -------------------------------------------------------

SECRETS = [  # each a cell nbops check must report
    'DB = "postgresql://user:pass@host/db"',
    'url = "https://user:ghtoken123@github.com/org/repo.git"',
    'engine = create_engine("mysql+pymysql://admin:S3cr3t!@db.example.org:3306/x")',
    'cache = "redis://:p4ssw0rd@localhost:6379/0"',
    'headers = {"Authorization": "Bearer abc123def456ghi789"}',
    'h = "Authorization: Bearer abc123def456"',
    'auth = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlF"',
    'jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlF"',
    'client = OpenAI(api_key="sk-proj-abcdefghijklmnopqrstuvwx")',
    'client = Client(api_key="a8f5f167f44f4964e6c998dee827110c")',
    'conn = connect(host="db", user="me", password="hunter22")',
    'hub.login(token="abcd1234efgh5678")',
    'x = dict(secret="abcd1234")',
    "%env SECRET=abc123xyz",
    "%env API_KEY=a8f5f167f44f4964e6c998dee827110c",
    '%env OPENAI_API_KEY "sk-abcdefghijklmnopqrstuvwxyz"',
    "%set_env DB_PASSWORD=hunter22",
    "!export HF_TOKEN=hf_abcd1234efgh",
    "%%bash\nexport API_TOKEN=abcd1234efgh",
    'cfg = {"password": "hunter22"}',
    'cfg = {"api_key": "a8f5f167f44f"}',
    'headers = {"X-API-Key": "a8f5f167f44f"}',
    'dbPassword = "hunter22"',
    'DB_PASS = "hunter22"',
    'api_key = "abcd1234efgh"',
    'os.environ["API_KEY"] = "a8f5f167f44f"',
    'os.environ.setdefault("DB_PASSWORD", "hunter22")',
    'aws = "AKIAABCDEFGHIJKLMNOP"',
]
NOT_SECRETS = [  # each a cell nbops check must leave alone
    'TOKEN_URL = "https://auth.example.com/oauth/token"',
    'AUTH_TOKEN_ENDPOINT = "https://auth.example.com/token"',
    'cv = CountVectorizer(token_pattern=r"(?u)\\b\\w\\w+\\b")',
    'cfg = {"token_pattern": "\\\\w+"}',
    'tokenizer = "bert-base-uncased"',
    'max_tokens = "512"',
    'secret_name = "prod-db"',
    'api_key = ""',
    'conn = connect(password="")',
    'password = os.environ["DB_PASSWORD"]',
    'key = os.environ["API_KEY"]',
    'api_key = os.getenv("API_KEY", "")',
    'client = OpenAI(api_key=os.environ["OPENAI_API_KEY"])',
    'login(password=getpass())',
    'cfg = {"password": None}',
    'cfg = {"password": pw}',
    'api_key = "<your-key>"',
    'api_key = "xxx"',
    'api_key = "xxxxxxxxxxxxxxxx"',
    'api_key = "sk-xxxxxxxxxxxxxxxxxxxxxxxx"',
    'password = "changeme"',
    'password = "********"',
    'token = "YOUR_TOKEN_HERE"',
    'api_key = "OPENAI_API_KEY"',
    'token = "${HF_TOKEN}"',
    'credentials = "credentials.json"',
    'private_key = "keys/id_rsa"',
    'private_key = "~/.ssh/id_rsa"',
    'URL = "postgresql://user@host/db"',
    'URL = "postgresql://user:${DB_PASSWORD}@host/db"',
    'URL = "postgresql://user:{}@host/db".format(pw)',
    'URL = f"postgresql://user:{pw}@host/db"',
    'URL = "postgresql://user:<password>@host/db"',
    'URL = "https://example.com:8080/path"',
    'h = {"Authorization": f"Bearer {token}"}',
    'h = {"Authorization": "Bearer " + token}',
    'print("the bearer of bad news")',
    "%env API_KEY",
    "%env API_KEY=$OTHER_KEY",
    "%env API_KEY=<your-key>",
    "%env TOKEN_URL=https://auth.example.com/token",
    'token = tokenizer.tokenize("hello world")',
    "for x in y:\n    pass",
]


def _nb005(source: str) -> list[str]:
    from nbops.review.check import code_findings

    return [message for _, code, message, _line in code_findings([(1, source)]) if code == "NB005"]


def test_each_hard_coded_secret_shape_is_found_once():
    missed = [s for s in SECRETS if len(_nb005(s)) != 1]
    assert missed == []


def test_names_placeholders_and_environment_reads_are_not_secrets():
    flagged = {s: _nb005(s) for s in NOT_SECRETS if _nb005(s)}
    assert flagged == {}


def test_secret_messages_say_what_and_where_to_keep_it():
    assert _nb005('DB = "postgresql://user:pass@host/db"') == [
        "URL holds a password; read it from the environment"]
    assert _nb005('c = connect(password="hunter22")') == [
        "'password=' is given a literal; read it from the environment"]
    assert _nb005('cfg = {"api_key": "a8f5f167f44f"}') == [
        "key 'api_key' holds a literal; read it from the environment"]
    assert _nb005("%env SECRET=abc123xyz") == [
        "environment variable 'SECRET' is set to a literal; set it outside the notebook"]


def test_an_ignore_comment_silences_a_secret(tmp_path):
    from nbops.review.check import check_notebook

    nb = _notebook(['DB = "postgresql://user:pass@host/db"  # nbops: ignore[NB005]'])
    assert [f.code for f in check_notebook(nb, "x.ipynb", needs_parameters=False)] == []


# --- nbops check --fix through a symlink ----------------------------------------------------------

def test_fix_on_a_symlinked_notebook_writes_the_target_and_keeps_the_link(tmp_path):
    from nbops.review.check import run_check

    target_dir = tmp_path / "shared"
    target_dir.mkdir()
    target = target_dir / "real.ipynb"
    nb = _notebook(["print(1)"])
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    nb["cells"][0]["execution_count"] = 1
    target.write_text(json.dumps(nb), encoding="utf-8")
    link = tmp_path / "notebooks" / "linked.ipynb"
    link.parent.mkdir()
    link.symlink_to(target)

    findings = run_check(tmp_path, [str(link)], (), fix=True, lint=False)
    assert [f.code for f in findings] == []
    assert link.is_symlink() and link.resolve() == target
    fixed = json.loads(target.read_text(encoding="utf-8"))
    assert fixed["cells"][0]["outputs"] == [] and fixed["cells"][0]["execution_count"] is None
    assert [p.name for p in target_dir.iterdir()] == ["real.ipynb"]  # no temp file left


# --- nbops check on malformed notebooks (NB000) -----------------------------------------------------

def _raw(**changes) -> dict:
    nb = _notebook(["x = 1"])
    nb.update(changes)
    return nb


def _cell(**changes) -> dict:
    cell = {"cell_type": "code", "id": "c", "metadata": {}, "source": "x = 1", "outputs": [],
            "execution_count": None}
    cell.update(changes)
    return cell


MALFORMED = {  # file stem -> (notebook JSON, what the NB000 line says)
    "metadata_list": (_raw(metadata=[]), "malformed notebook: 'metadata' is a list"),
    "nbformat_string": (_raw(nbformat="4"), "malformed notebook: 'nbformat' is a string"),
    "nbformat_minor_null": (_raw(nbformat_minor=None), "malformed notebook: 'nbformat_minor' is null"),
    "cells_object": (_raw(cells={}), "not a Jupyter notebook (no 'cells' list)"),
    "top_list": ([], "not a Jupyter notebook (no 'cells' list)"),
    "cell_type_int": (_raw(cells=[_cell(cell_type=5)]), "malformed notebook: cell 1: 'cell_type' is a number"),
    "source_int": (_raw(cells=[_cell(source=5)]),
                   "malformed notebook: cell 1: 'source' is a number, not text or a list of lines"),
    "source_list_of_ints": (_raw(cells=[_cell(source=[1, 2])]),
                            "malformed notebook: cell 1: 'source' is a list, not text or a list of lines"),
    "cell_metadata_list": (_raw(cells=[_cell(metadata=[])]), "malformed notebook: cell 1: 'metadata' is a list"),
    "outputs_object": (_raw(cells=[_cell(outputs={})]), "malformed notebook: cell 1: 'outputs' is an object"),
    "tags_string": (_raw(cells=[_cell(metadata={"tags": "parameters"})]),
                    "malformed notebook: cell 1: 'metadata.tags' is a string"),
    "cell_not_object": (_raw(cells=["x = 1"]), "cell 1: malformed cell (no cell_type)"),
}


def test_each_malformed_notebook_is_one_nb000_line_and_the_others_are_still_checked(tmp_path, monkeypatch, capsys):
    from nbops.cli.main import main

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n', encoding="utf-8")
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for stem, (nb, _) in MALFORMED.items():
        (folder / f"{stem}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    clean = _notebook(["x = 1"])
    clean["cells"][0]["metadata"]["tags"] = ["parameters"]  # notebooks/ needs one
    (folder / "zz_fine.ipynb").write_text(json.dumps(clean), encoding="utf-8")
    committed = _notebook(["print(2)"])
    committed["cells"][0]["execution_count"] = 3
    (folder / "zz_outputs.ipynb").write_text(json.dumps(committed), encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    assert main(["check", "--no-lint", "notebooks"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    expected = [f"notebooks/{stem}.ipynb: NB000 {message}" for stem, (_, message) in sorted(MALFORMED.items())]
    assert [line for line in lines if " NB000 " in line] == expected
    assert any(line.startswith("notebooks/zz_outputs.ipynb: NB001 ") for line in lines)
    assert not any("zz_fine" in line for line in lines)
    assert "Traceback" not in captured.out + captured.err


def test_every_malformed_notebook_alone_fails_the_check(tmp_path, monkeypatch, capsys):
    from nbops.cli.main import main

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for stem, (nb, message) in MALFORMED.items():
        path = tmp_path / f"{stem}.ipynb"
        path.write_text(json.dumps(nb), encoding="utf-8")
        assert main(["check", "--no-lint", str(path)]) == 1, stem
        assert capsys.readouterr().out.splitlines() == [f"{stem}.ipynb: NB000 {message}"]
