"""`pytest --nbops [paths]`: every notebook a test, run at its smoke parameters in a fresh kernel.

Registered as a `pytest11` entry point, so pytest loads this module in every run wherever nbops
is installed: it imports pytest and the standard library only, and does nothing until `--nbops`
is given (nbops's own modules load inside the hooks then). With `--nbops` and no paths, the
project's notebooks folder (`notebooks_dir` in `[tool.nbops]`) is collected; with paths, the
`.ipynb` files given and those in the folders given. Works under pytest-xdist (`-n 2`): each
worker runs its notebooks, each in its own kernel.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nbops", "notebooks as tests (nbops)")
    group.addoption(
        "--nbops", action="store_true", default=False,
        help="collect .ipynb notebooks as tests: each runs in a fresh kernel at its smoke "
             "parameters (metadata.nbops.test.params) and its records must meet "
             "metadata.nbops.test.expect; with no paths, the project's notebooks/ folder",
    )


def _one_line(exc: BaseException, path: Path | None = None, shown: str = "") -> str:
    """EXC's one line, PATH written as SHOWN (relative to where pytest was started)."""
    from nbops.core.errors import NbopsError

    line = exc.one_line() if isinstance(exc, NbopsError) else str(exc)
    return line.replace(str(path), shown) if path is not None and shown else line


def _shown(path: Path, config: pytest.Config) -> str:
    try:
        return os.path.relpath(path, config.invocation_params.dir)
    except ValueError:  # another drive (Windows)
        return str(path)


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("nbops"):
        return
    config.addinivalue_line("markers", "nbops: a notebook run by `pytest --nbops`")
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return
    # no paths given: the project's notebooks instead of testpaths or the current folder
    from nbops.core.config import load_settings
    from nbops.core.errors import NbopsError

    try:
        settings = load_settings(config.invocation_params.dir)
    except NbopsError as exc:
        raise pytest.UsageError(f"--nbops: {_one_line(exc)}") from None
    folder = settings.path(settings.notebooks_dir)
    if not folder.is_dir():
        raise pytest.UsageError(f"--nbops: no notebooks folder {folder} (notebooks_dir in [tool.nbops]); "
                                "pass notebook files or folders, e.g. pytest --nbops path/to/notebooks")
    config.args = [str(folder)]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".ipynb" and parent.config.getoption("nbops"):
        return NotebookFile.from_parent(parent, path=file_path)
    return None


class NotebookFile(pytest.File):
    def collect(self):
        from nbops.core.errors import NbopsError
        from nbops.testing.smoke import load_smoke

        try:
            smoke = load_smoke(self.path)
        except NbopsError as exc:
            # a malformed notebook or test key: one failing item with a one-line reason, not a
            # collection error (that stops the whole session, so the valid notebooks never ran)
            reason = _one_line(exc, self.path, _shown(self.path, self.config))
            yield BrokenNotebookItem.from_parent(self, name="smoke", reason=reason)
            return
        yield NotebookItem.from_parent(self, name="smoke", smoke=smoke)


class BrokenNotebook(Exception):
    """A notebook `pytest --nbops` cannot run: its reason is the whole report."""


class BrokenNotebookItem(pytest.Item):
    def __init__(self, *, reason: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason
        self.add_marker("nbops")

    def runtest(self) -> None:
        raise BrokenNotebook(self.reason)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, BrokenNotebook):
            return self.reason
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{_shown(self.path, self.config)} (cannot be run)"


class NotebookItem(pytest.Item):
    def __init__(self, *, smoke: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smoke = smoke
        self.add_marker("nbops")

    def _shown_path(self) -> str:
        return _shown(self.path, self.config)

    def _out_dir(self) -> Path:
        factory = getattr(self.config, "_tmp_path_factory", None)  # pytest's tmp_path, per worker
        if factory is not None:
            return Path(factory.mktemp(f"nbops-{self.path.stem}"))
        import tempfile

        return Path(tempfile.mkdtemp(prefix=f"nbops-{self.path.stem}-"))

    def runtest(self) -> None:
        from nbops.testing.smoke import check, format_records, run_smoke

        result = run_smoke(self.smoke, self._out_dir())
        self.user_properties.append(("nbops_records", format_records(result.records)))
        self.user_properties.append(("nbops_executed_notebook", str(result.output_path)))
        check(self.smoke, result, self._shown_path())  # a failure's report says all of this itself
        self.add_report_section("call", "nbops", f"run at: {self.smoke.describe()} in {result.duration:.1f}s\n"
                                f"records: {format_records(result.records) or 'none'}\n"
                                f"executed notebook: {result.output_path}")

    def repr_failure(self, excinfo, style=None):
        from nbops.core.errors import NbopsError
        from nbops.testing.smoke import SmokeFailure

        if isinstance(excinfo.value, SmokeFailure):
            return str(excinfo.value)
        if isinstance(excinfo.value, NbopsError):  # bad input found before the kernel started
            return _one_line(excinfo.value, self.path, self._shown_path())  # names the notebook
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self._shown_path()} ({self.smoke.describe()})"
