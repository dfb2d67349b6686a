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


# --- rich: the user's text is printed as it is --------------------------------------------------

MARKUP = "[/x] boom [bold]"


def _console_text(renderable) -> str:
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(renderable)
    return buf.getvalue()


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
