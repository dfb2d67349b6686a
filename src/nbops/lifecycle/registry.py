"""The model registry: versions compared by their metrics, aliases moved with a record, approvals.

Versions live in MLflow's registry. nbops tags each version it registers with its metrics
(`metric.<name>`), the git sha, the notebook and the run; the registered model carries the compare
metric and its direction (`nbops.compare`, `nbops.higher_is_better`) and the notebook's gates
(`nbops.gates`). Approvals are a history: one version tag per approval, `nbops.approval.<ns>`
holding JSON (who, when, note), keyed by time like the alias events so two approvals at once never
overwrite each other; `nbops.approved_by`, `nbops.approved_at` and `nbops.approval_note` hold the
latest one (all that versions approved before the history have). A person counts once however
often they approve; `[tool.nbops.registry] require_approvals = N` asks for N people. Every alias
move is a registered-model tag `nbops.alias_event.<alias>.<n>` holding JSON (who, when, from which
version, to which), so a move can be undone: `rollback` replays the events as a stack (a promotion pushes the version it replaced, a rollback pops).
"""

from __future__ import annotations

import getpass
import json
import math
import time
from dataclasses import dataclass, field

from nbops.core.config import Settings
from nbops.core.errors import RegistryError, first_line
from nbops.core.gates import failed_gates, parse_gate
from nbops.core.store import is_not_found, mask_uri, params_digest
from nbops.run.orphans import open_client

ALIASES = ("champion", "challenger")
_EVENT = "nbops.alias_event."
_APPROVAL = "nbops.approval."


@dataclass(frozen=True)
class Approval:
    by: str
    at: str  # UTC, ISO 8601
    note: str = ""


def approvals_from_tags(tags: dict[str, str]) -> list[Approval]:
    """A version's approvals, oldest first (from before the history: the `nbops.approved_*` tags)."""
    found = []
    for key, value in sorted(tags.items()):  # zero-padded nanoseconds: sorted by time
        if key.startswith(_APPROVAL) and key[len(_APPROVAL):].isdigit():
            try:
                data = json.loads(value)
            except json.JSONDecodeError:
                continue  # a hand-edited tag
            if isinstance(data, dict) and str(data.get("by", "")).strip():
                found.append(Approval(str(data["by"]), str(data.get("at", "")), str(data.get("note") or "")))
    if not found and tags.get("nbops.approved_by"):
        return [Approval(tags["nbops.approved_by"], tags.get("nbops.approved_at", ""),
                         tags.get("nbops.approval_note", ""))]
    return found


def distinct_approvers(approvals: list[Approval]) -> list[str]:
    """Who approved, each person once (names compared without case or surrounding spaces)."""
    seen: dict[str, str] = {}
    for a in approvals:
        seen.setdefault(a.by.strip().casefold(), a.by.strip())
    return list(seen.values())


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


def rank_key(info: ModelInfo):
    """Sort key: best compare metric first, missing/NaN last, newest first among equals."""

    def key(v: VersionInfo):
        value = v.metrics.get(info.compare) if info.compare else None
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        score = 0.0 if value is None or missing else (-value if info.higher_is_better else value)
        return (missing, score, -int(v.version))

    return key


class Registry:
    """MLflow's registry seen through nbops's conventions; methods return plain dataclasses."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.uri = uri = settings.resolved_tracking_uri
        self.client, _ = open_client(uri)  # checks the server, ends a dead nbops's runs

    @property
    def required_approvals(self) -> int:
        """How many people must approve a version before it may be champion (0: none)."""
        reg = self.settings.registry
        return int(reg.get("require_approvals") or (1 if reg.get("require_approval") else 0))

    # -- reading -----------------------------------------------------------------------------
    def model(self, name: str) -> ModelInfo:
        from mlflow.exceptions import MlflowException

        try:
            rm = self.client.get_registered_model(name)
        except MlflowException as exc:
            if not is_not_found(exc):  # the store itself failed
                raise RegistryError(f"cannot read model '{name}' from {mask_uri(self.uri)}: "
                                    f"{mask_uri(first_line(exc))}") from None
            names = [m.name for m in self.client.search_registered_models(max_results=1000)]
            from nbops.notebook.params import closest

            guess = closest(name, names)
            raise RegistryError(
                f"no registered model named '{name}'",
                hint=f"did you mean '{guess}'?" if guess else
                ("registered: " + ", ".join(names[:10]) if names else "no model is registered yet"),
            ) from None
        tags = rm.tags or {}
        try:
            gates = tuple(json.loads(tags.get("nbops.gates", "[]")))
        except json.JSONDecodeError:
            gates = ()
        return ModelInfo(
            name=name,
            compare=tags.get("nbops.compare", ""),
            higher_is_better=tags.get("nbops.higher_is_better", "true") != "false",
            gates=gates,
            aliases={a: str(v) for a, v in (rm.aliases or {}).items()},
        )

    def _info(self, mv, aliases_by_version: dict[str, list[str]]) -> VersionInfo:
        tags = dict(mv.tags or {})
        # the version's `metric.*` tags are rounded to 6 digits for display; the run has the
        # exact values (0.8999996 must not pass `accuracy >= 0.9`), so the run wins when it exists
        metrics = {k[len("metric."):]: float(v) for k, v in tags.items() if k.startswith("metric.")}
        run = None
        if mv.run_id:
            from mlflow.exceptions import MlflowException

            try:
                run = self.client.get_run(mv.run_id)
            except MlflowException as exc:
                # only a deleted run falls back to the version's tags: their metrics are rounded
                # for display, and gates or ranking on them would be weaker than the run's own
                if not is_not_found(exc):
                    raise RegistryError(f"cannot read run {mv.run_id} of {mv.name} version {mv.version}: "
                                        f"{mask_uri(first_line(exc))}") from None
                run = None
        if run is not None:
            metrics.update(run.data.metrics)
            tags.setdefault("nbops.params_digest", params_digest(dict(run.data.params)))
            for key in ("nbops.notebook", "nbops.git_sha"):
                if key in run.data.tags:
                    tags.setdefault(key, run.data.tags[key])
        return VersionInfo(
            name=mv.name, version=str(mv.version), run_id=mv.run_id or "", source=mv.source or "",
            metrics=metrics, tags=tags, aliases=tuple(aliases_by_version.get(str(mv.version), ())),
            created=int(mv.creation_timestamp or 0), store_uri=self.uri,
        )

    def versions(self, name: str) -> tuple[ModelInfo, list[VersionInfo]]:
        """Every version of NAME, best compare metric first."""
        info = self.model(name)
        by_version: dict[str, list[str]] = {}
        for alias, version in info.aliases.items():
            by_version.setdefault(version, []).append(alias)
        found = self.client.search_model_versions(f"name = '{name}'", max_results=10_000)
        versions = [self._info(mv, by_version) for mv in found]
        versions.sort(key=rank_key(info))
        return info, versions

    def get(self, name: str, version: str) -> VersionInfo:
        from mlflow.exceptions import MlflowException

        info = self.model(name)
        try:
            mv = self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            if not is_not_found(exc):
                raise RegistryError(f"cannot read {name} version {version}: {mask_uri(first_line(exc))}") from None
            raise RegistryError(f"model '{name}' has no version {version}",
                                hint=f"nbops models list {name}") from None
        by_version: dict[str, list[str]] = {}
        for alias, v in info.aliases.items():
            by_version.setdefault(v, []).append(alias)
        return self._info(mv, by_version)

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
        rm = self.client.get_registered_model(name)
        prefix = f"{_EVENT}{alias}."
        found = []
        for key, value in (rm.tags or {}).items():
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
        self.client.set_registered_model_tag(
            name, f"{_EVENT}{event.alias}.{time.time_ns():020d}",
            json.dumps({"to": event.to_version, "from": event.from_version, "by": event.by,
                        "at": event.at, "action": event.action}),
        )

    def promote(self, name: str, version: str, alias: str, by: str = "") -> AliasEvent:
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
        self.client.set_registered_model_alias(name, alias, str(version))
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

    def approve(self, name: str, version: str, by: str, note: str = "") -> VersionInfo:
        """Add an approval to the version's history (the same person again is kept, counts once)."""
        by = by.strip()
        if not by:
            raise RegistryError("--by needs a name", hint="who approves, e.g. --by alice")
        target = self.get(name, version)
        v = target.version
        if target.approved_by and not any(k.startswith(_APPROVAL) for k in target.tags):
            self._approval_tag(name, v, target.approvals[0])  # approved before the history was kept
        approval = Approval(by, _now(), note[:5000])
        self._approval_tag(name, v, approval)
        for key, value in {"nbops.approved_by": by, "nbops.approved_at": approval.at,
                           "nbops.approval_note": approval.note}.items():
            if value:
                self.client.set_model_version_tag(name, v, key, value)
            elif key in target.tags:  # the latest approval's note, never an older one's
                self.client.delete_model_version_tag(name, v, key)
        return self.get(name, v)

    def _approval_tag(self, name: str, version: str, approval: Approval) -> None:
        self.client.set_model_version_tag(name, version, f"{_APPROVAL}{time.time_ns():020d}", json.dumps(
            {"by": approval.by, "at": approval.at, "note": approval.note}))

    def rollback(self, name: str, alias: str = "champion", by: str = "") -> AliasEvent:
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
        self.client.set_registered_model_alias(name, alias, target)
        event = AliasEvent(alias, target, current, by or whoami(), _now(), "rollback")
        self._record(name, event)
        return event

