"""The model registry: versions compared by their metrics, aliases moved with a record, approvals.

Versions live in MLflow's registry, tagged with their metrics (`metric.<name>`), git sha, notebook
and run; the registered model carries the compare metric, its direction and the notebook's gates.
Approvals are a history of version tags (lifecycle/approvals.py). Every alias move is a
registered-model tag `nbops.alias_event.<alias>.<ns>` holding JSON (who, when, from, to), so a move
can be undone: `rollback` replays the events as a stack (a promotion pushes the version it
replaced, a rollback pops).
"""

from __future__ import annotations

import getpass
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import RegistryError, map_mlflow_errors
from nbops.core.gates import failed_gates, parse_gate
from nbops.core.registry_read import (
    ClientReader,
    RawModel,
    RawRun,
    RawVersion,
    Reader,
    Unavailable,
    fast_reader,
)
from nbops.core.store import params_digest
from nbops.lifecycle.approvals import _APPROVAL, Approval, approvals_from_tags, distinct_approvers
from nbops.run.orphans import HEARTBEAT_TAG, OWNER_TAG, STALE_S, open_client, owner_alive

ALIASES = ("champion", "challenger")
_EVENT = "nbops.alias_event."
Say = Callable[[str], None] | None  # told what a write is about to do, once its checks hold


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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"


def _orphaned(tags: dict[str, str]) -> bool:
    """Whether a RUNNING run's owner is gone (run/orphans.py's rule): opening the client ends it."""
    tag = tags.get(OWNER_TAG)
    if not tag:
        return False
    alive = owner_alive(tag)
    return alive is False or (alive is None and time.time() - float(tags.get(HEARTBEAT_TAG) or 0) > STALE_S)


def rank_key(info: ModelInfo):
    """Sort key: best compare metric first, missing/NaN last, newest first among equals."""

    def key(v: VersionInfo):
        value = v.metrics.get(info.compare) if info.compare else None
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        score = 0.0 if value is None or missing else (-value if info.higher_is_better else value)
        return (missing, score, -int(v.version))

    return key


class Registry:
    """MLflow's registry seen through nbops's conventions; methods return plain dataclasses.

    Reads go through a fast reader (core/registry_read.py: the sqlite store read-only, a server's
    REST API) unless a RUNNING run is orphaned (opening MLflow's client ends it) or the store
    needs MLflow; writes, and any read the fast reader cannot answer, through MLflow's client."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.uri = uri = settings.resolved_tracking_uri
        self._client: Any = None
        self.reader: Reader | None = fast_reader(uri)
        if self.reader is not None:
            try:
                if any(_orphaned(tags) for _, tags in self.reader.running_runs()):
                    self.reader = None  # the client's opening ends it
            except Unavailable:
                self.reader = None
        if self.reader is None:
            self.reader = ClientReader(self.client, uri)

    @property
    def client(self) -> Any:
        """MLflow's client, opened on first use (checks the server, ends a dead nbops's runs)."""
        if self._client is None:
            self._client, _ = open_client(self.uri)
        return self._client

    def _read(self, method: str, *args: str) -> Any:
        try:
            return getattr(self.reader, method)(*args)
        except Unavailable:  # the fast reader met something it does not know: MLflow answers
            self.reader = ClientReader(self.client, self.uri)
            return getattr(self.reader, method)(*args)

    def _write(self, method: str, *args: str) -> None:
        """A write by MlflowClient's method name: on the fast path (no `import mlflow`) through the
        server's REST API or into the embedded store (core/sqlite_registry.py), else (or when
        that refuses) through MLflow's client."""
        fast = getattr(self.reader, method, None)
        if fast is not None:
            try:
                return fast(*args)
            except Unavailable:
                pass
        with map_mlflow_errors(what=f"cannot {method.replace('_', ' ')} of '{args[0]}'", store=self.uri,
                               error=RegistryError):
            getattr(self.client, method)(*args)

    @property
    def required_approvals(self) -> int:
        """How many people must approve a version before it may be champion (0: none)."""
        reg = self.settings.registry
        return int(reg.get("require_approvals") or (1 if reg.get("require_approval") else 0))

    # -- reading -----------------------------------------------------------------------------
    def model(self, name: str) -> ModelInfo:
        rm: RawModel | None = self._read("model", name)
        if rm is None:
            names = self._read("model_names")
            from nbops.notebook.params import closest

            guess = closest(name, names)
            raise RegistryError(
                f"no registered model named '{name}'",
                hint=f"did you mean '{guess}'?" if guess else
                ("registered: " + ", ".join(names[:10]) if names else "no model is registered yet"),
            )
        try:
            gates = tuple(json.loads(rm.tags.get("nbops.gates", "[]")))
        except json.JSONDecodeError:
            gates = ()
        return ModelInfo(name=name, compare=rm.tags.get("nbops.compare", ""),
                         higher_is_better=rm.tags.get("nbops.higher_is_better", "true") != "false",
                         gates=gates, aliases=dict(rm.aliases))

    def _info(self, mv: RawVersion, aliases_by_version: dict[str, list[str]]) -> VersionInfo:
        tags = dict(mv.tags)
        # the version's `metric.*` tags are rounded to 6 digits for display; the run has the
        # exact values (0.8999996 must not pass `accuracy >= 0.9`), so the run wins when it exists;
        # only a deleted run falls back to the version's tags (gates on them would be weaker)
        metrics = {k[len("metric."):]: float(v) for k, v in tags.items() if k.startswith("metric.")}
        run: RawRun | None = self._read("run", mv.run_id) if mv.run_id else None
        if run is not None:
            metrics.update(run.metrics)
            tags.setdefault("nbops.params_digest", params_digest(dict(run.params)))
            for key in ("nbops.notebook", "nbops.git_sha"):
                if key in run.tags:
                    tags.setdefault(key, run.tags[key])
        return VersionInfo(
            name=mv.name, version=mv.version, run_id=mv.run_id, source=mv.source, metrics=metrics,
            tags=tags, aliases=tuple(aliases_by_version.get(mv.version, ())), created=mv.created,
            store_uri=self.uri,
        )

    def versions(self, name: str) -> tuple[ModelInfo, list[VersionInfo]]:
        """Every version of NAME, best compare metric first."""
        info = self.model(name)
        versions = [self._info(mv, info.by_version) for mv in self._read("versions", name)]
        versions.sort(key=rank_key(info))
        return info, versions

    def names(self) -> list[str]:
        """The registered models' names (MLflow's first 1,000), sorted."""
        return sorted(self._read("model_names"))

    def get(self, name: str, version: str) -> VersionInfo:
        info = self.model(name)
        mv: RawVersion | None = self._read("version", name, str(version))
        if mv is None:
            raise RegistryError(f"model '{name}' has no version {version}", hint=f"nbops models list {name}")
        return self._info(mv, info.by_version)

    def resolve(self, ref: str) -> VersionInfo:
        """NAME@ALIAS, NAME/VERSION, or NAME (its champion)."""
        name, alias, version = parse_ref(ref)
        if version:
            return self.get(name, version)
        alias = alias or "champion"
        info = self.model(name)
        if alias not in info.aliases:
            raise RegistryError(
                f"model '{name}' has no alias '{alias}'",
                hint=f"nbops models promote {name} VERSION --alias {alias}"
                if alias in ALIASES else f"aliases: {', '.join(info.aliases) or 'none'}",
            )
        return self.get(name, info.aliases[alias])

    def events(self, name: str, alias: str) -> list[AliasEvent]:
        rm: RawModel | None = self._read("model", name)
        prefix = f"{_EVENT}{alias}."
        found = []
        for key, value in (rm.tags if rm else {}).items():
            if key.startswith(prefix) and key[len(prefix):].isdigit():
                try:
                    data = json.loads(value)
                except json.JSONDecodeError:
                    continue  # a hand-edited tag: not an event nbops can replay
                found.append((int(key[len(prefix):]), AliasEvent(alias, data.get("to"), data.get("from"),
                                                                  data.get("by", ""), data.get("at", ""),
                                                                  data.get("action", "promote"))))
        return [event for _, event in sorted(found, key=lambda pair: pair[0])]

    # -- checks ------------------------------------------------------------------------------
    def gate_failures(self, info: ModelInfo, version: VersionInfo) -> list[str]:
        """Why VERSION may not be champion: the notebook's gates and `champion_gates` in
        [tool.nbops.registry], evaluated on the version's metrics."""
        texts = [*info.gates, *self.settings.registry.get("champion_gates", [])]
        gates = tuple(parse_gate(t, f"model {info.name}") for t in dict.fromkeys(texts))
        failures = failed_gates(gates, version.metrics)
        if version.tags.get("nbops.gates", "").startswith("failed"):
            failures.insert(0, "its gates failed when it was registered")
        return failures

    # -- writing -----------------------------------------------------------------------------
    def _record(self, name: str, event: AliasEvent) -> None:
        # keyed by time, not by count: two moves at once must not overwrite each other's record
        # (MLflow has no compare-and-set, so the alias itself is still last-writer-wins)
        self._write(
            "set_registered_model_tag", name, f"{_EVENT}{event.alias}.{time.time_ns():020d}",
            json.dumps({"to": event.to_version, "from": event.from_version, "by": event.by,
                        "at": event.at, "action": event.action}),
        )

    def promote(self, name: str, version: str, alias: str, by: str = "", say: Say = None) -> AliasEvent:
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias '{alias}'", hint="use --alias champion or --alias challenger")
        info = self.model(name)
        target = self.get(name, version)
        if alias == "champion":
            failures = self.gate_failures(info, target)
            if failures:
                raise RegistryError(
                    f"{name} version {version} cannot be champion: {'; '.join(failures)}",
                    hint="promote a version whose gates hold (nbops models list " + name + ")",
                )
            self._check_approvals(target)
        previous = info.aliases.get(alias)
        if previous == str(version):
            raise RegistryError(f"{name} version {version} is already {alias}")
        event = AliasEvent(alias, str(version), previous, by or whoami(), _now(), "promote")
        if say:
            say(f"moving {name}@{alias} to version {version}" + (f" from {previous}" if previous else ""))
        self._write("set_registered_model_alias", name, alias, str(version))
        self._record(name, event)
        return event

    def _check_approvals(self, target: VersionInfo) -> None:
        needed, have = self.required_approvals, target.approvers
        if len(have) >= needed:
            return
        who = f" ({', '.join(have)})" if have else ""
        message = f"{target.name} version {target.version} is not approved" + (
            " ([tool.nbops.registry] require_approval)" if needed == 1 else
            f": {len(have)} of {needed} approvers{who}, {needed - len(have)} more needed"
            f" ([tool.nbops.registry] require_approvals = {needed})")
        raise RegistryError(message, hint=f"nbops models approve {target.name} {target.version} --by NAME"
                            + (" (someone who has not approved it yet)" if have else ""))

    def approve(self, name: str, version: str, by: str, note: str = "", say: Say = None) -> VersionInfo:
        """Add an approval to the version's history (the same person again is kept, counts once)."""
        by = by.strip()
        if not by:
            raise RegistryError("--by needs a name", hint="who approves, e.g. --by alice")
        target = self.get(name, version)
        v = target.version
        if say:
            say(f"recording {by}'s approval of {name} version {v}")
        if target.approved_by and not any(k.startswith(_APPROVAL) for k in target.tags):
            self._approval_tag(name, v, target.approvals[0])  # approved before the history was kept
        approval = Approval(by, _now(), note[:5000])
        self._approval_tag(name, v, approval)
        for key, value in {"nbops.approved_by": by, "nbops.approved_at": approval.at,
                           "nbops.approval_note": approval.note}.items():
            if value:
                self._write("set_model_version_tag", name, v, key, value)
            elif key in target.tags:  # the latest approval's note, never an older one's
                self._write("delete_model_version_tag", name, v, key)
        return self.get(name, v)

    def _approval_tag(self, name: str, version: str, approval: Approval) -> None:
        self._write("set_model_version_tag", name, version, f"{_APPROVAL}{time.time_ns():020d}", json.dumps(
            {"by": approval.by, "at": approval.at, "note": approval.note}))

    def rollback(self, name: str, alias: str = "champion", by: str = "", say: Say = None) -> AliasEvent:
        """Undo the last alias move that is still in effect: back to the version it replaced."""
        info = self.model(name)
        stack: list[str | None] = []
        for event in self.events(name, alias):
            if event.action == "promote":
                stack.append(event.from_version)
            elif stack:
                stack.pop()
        if not stack or stack[-1] is None:
            # the first move has nothing before it; removing the alias would stop `nbops serve`
            raise RegistryError(f"{name}@{alias} has no earlier version to roll back to",
                                hint=f"move it with: nbops models promote {name} VERSION --alias {alias}")
        target = stack[-1]
        current = info.aliases.get(alias)
        self.get(name, target)  # a deleted version: a one-line error, not MLflow's exception
        if say:
            say(f"moving {name}@{alias} back to version {target}" + (f" from {current}" if current else ""))
        self._write("set_registered_model_alias", name, alias, target)
        event = AliasEvent(alias, target, current, by or whoami(), _now(), "rollback")
        self._record(name, event)
        return event

