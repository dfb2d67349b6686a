"""Registered models and their versions as plain data: what the registry's reads return
(lifecycle/registry.py), how a version is named on the command line and how versions rank.

Versions carry their metrics (`metric.<name>` tags, the run's exact values when it exists), git
sha, notebook and run; a registered model carries the compare metric, its direction and the
notebook's gates. Pure: no I/O, no MLflow.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from nbops.core.errors import RegistryError
from nbops.lifecycle.approvals import Approval, approvals_from_tags, distinct_approvers

ALIASES = ("champion", "challenger")


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str
    source: str  # the model's URI in MLflow (models:/<model id> for logged models)
    metrics: dict[str, float]
    tags: dict[str, str]
    aliases: tuple[str, ...] = ()
    created: int = 0  # ms since the epoch
    store_uri: str = ""  # the tracking/registry URI it came from (`models.load` reads it there)

    @property
    def notebook(self) -> str:
        return self.tags.get("nbops.notebook", "")

    @property
    def git_sha(self) -> str:
        return self.tags.get("nbops.git_sha", "")

    @property
    def params_digest(self) -> str:
        return self.tags.get("nbops.params_digest", "")

    @property
    def approved_by(self) -> str:
        """The latest approver."""
        return self.tags.get("nbops.approved_by", "")

    @property
    def approvals(self) -> list[Approval]:
        return approvals_from_tags(self.tags)

    @property
    def approvers(self) -> list[str]:
        return distinct_approvers(self.approvals)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    compare: str  # the metric versions are ranked by; empty when the notebook named none
    higher_is_better: bool
    gates: tuple[str, ...]  # as registered by the notebook
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version

    @property
    def by_version(self) -> dict[str, list[str]]:
        return {v: [a for a, av in self.aliases.items() if av == v] for v in self.aliases.values()}


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias (lifecycle/aliases.py records and replays them)."""

    alias: str
    to_version: str | None
    from_version: str | None
    by: str
    at: str
    action: str  # promote or rollback


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    """NAME, NAME@ALIAS or NAME/VERSION -> (name, alias, version)."""
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        if not name or not alias:
            raise RegistryError(f"bad model reference {ref!r}", hint="NAME, NAME@ALIAS or NAME/VERSION")
        return name, alias, None
    if "/" in ref:
        name, version = ref.rsplit("/", 1)
        if not name or not version.isdigit():
            raise RegistryError(f"bad model reference {ref!r}", hint="NAME/VERSION takes a version number")
        return name, None, version
    return ref, None, None


def rank_key(info: ModelInfo):
    """Sort key: best compare metric first, missing/NaN last, newest first among equals."""

    def key(v: VersionInfo):
        value = v.metrics.get(info.compare) if info.compare else None
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        score = 0.0 if value is None or missing else (-value if info.higher_is_better else value)
        return (missing, score, -int(v.version))

    return key


def utc_now() -> str:
    """When an alias move or an approval is recorded: UTC, ISO 8601 to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
