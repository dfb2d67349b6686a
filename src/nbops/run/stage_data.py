"""The plain values one run stage hands to the next; no behaviour beyond reading them.

A RunSpec (spec.py) goes to the tracker, which creates a StartedRun; the engine executes the
notebook into a RunResult (a CellError when it failed); the tracker finishes the run into a
TrackedRun (or raises NotDelivered when the record stays in the spool); the runner pairs them as
an Outcome for the summary. A Registrar is what the run layer calls to register a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nbops.run.spec import RunSpec

if TYPE_CHECKING:
    from nbops.notebook.document import ModelSpec
    from nbops.run.localrun import LocalRun


@dataclass(frozen=True)
class CellError:
    cell: int | None  # 1-based over the source notebook's cells (the injected cell not counted)
    ename: str
    evalue: str

    def __str__(self) -> str:
        where = f"cell {self.cell}: " if self.cell else ""
        return f"{where}{self.ename}: {self.evalue}" if self.evalue else f"{where}{self.ename}"


@dataclass(frozen=True)
class RunResult:
    spec: RunSpec
    status: str  # "succeeded", "failed" or "interrupted" (Ctrl-C); "skipped" in a pipeline
    output_path: Path
    duration: float
    error: CellError | None = None
    records: dict[str, Any] = field(default_factory=dict)
    kernel_log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class Registrar(Protocol):
    """Registers the model a successful run logged: (model name, version, note on why not).

    The run layer calls it and never imports the registry (`nbops.lifecycle.registration.Registrar`
    is the one nbops uses); None anywhere means "never register"."""

    def __call__(self, client: Any, uri: str, run_id: str,
                 spec: ModelSpec | None) -> tuple[str | None, str | None, str]: ...


@dataclass(frozen=True)
class StartedRun:
    run_id: str  # "" when the server was lost before the run could be created
    experiment_id: str
    tags: dict[str, str]
    experiment: str = ""
    run_name: str = ""
    start_time: int = 0
    local: LocalRun | None = None  # logged locally first (a tracking server)
    spool_id: str = ""  # the spool entry it becomes when the store cannot take it
    claim_key: str = ""  # private: the run on the store carries spool.claim(claim_key) (a spooled record replaces it)


class NotDelivered(Exception):  # noqa: N818 - an outcome, not a bug
    """The run is whole in the spool; the server (or its artifact store) did not take it."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    experiment_id: str
    status: str  # FINISHED, FAILED or KILLED
    model_name: str | None = None
    model_version: str | None = None
    note: str = ""  # why no model was registered, or what went wrong


@dataclass(frozen=True)
class Outcome:
    result: RunResult
    tracked: TrackedRun | None = None
    unrecorded: str = ""  # the store could not take the record: what was kept locally, and why

    @property
    def ok(self) -> bool:
        return self.result.ok and not self.unrecorded
