"""Moving a model's aliases (champion, challenger) with a record, and undoing a move.

Every alias move is a registered-model tag `nbops.alias_event.<alias>.<ns>` holding JSON (who,
when, from, to), so a move can be undone: `rollback` replays the events as a stack (a promotion
pushes the version it replaced, a rollback pops). A promotion to champion first checks
lifecycle/eligibility.py's rules.
"""

from __future__ import annotations

import getpass
import json
import time

from nbops.core.errors import RegistryError
from nbops.core.registry_read import RawModel
from nbops.lifecycle.eligibility import check_approvals, gate_failures
from nbops.lifecycle.registry import Registry
from nbops.lifecycle.registry_store import Say
from nbops.lifecycle.versions import ALIASES, AliasEvent, utc_now

_EVENT = "nbops.alias_event."


def whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"


def alias_events(registry: Registry, name: str, alias: str) -> list[AliasEvent]:
    """ALIAS's recorded moves on model NAME, oldest first."""
    rm: RawModel | None = registry.store.read("model", name)
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


def _record(registry: Registry, name: str, event: AliasEvent) -> None:
    # keyed by time, not by count: two moves at once must not overwrite each other's record
    # (MLflow has no compare-and-set, so the alias itself is still last-writer-wins)
    registry.store.write(
        "set_registered_model_tag", name, f"{_EVENT}{event.alias}.{time.time_ns():020d}",
        json.dumps({"to": event.to_version, "from": event.from_version, "by": event.by,
                    "at": event.at, "action": event.action}),
    )


def promote(registry: Registry, name: str, version: str, alias: str, by: str = "",
            say: Say = None) -> AliasEvent:
    """Point NAME@ALIAS at VERSION; to champion only when its gates and approvals hold."""
    if alias not in ALIASES:
        raise RegistryError(f"unknown alias '{alias}'", hint="use --alias champion or --alias challenger")
    info = registry.model(name)
    target = registry.get(name, version)
    if alias == "champion":
        failures = gate_failures(registry.settings, info, target)
        if failures:
            raise RegistryError(
                f"{name} version {version} cannot be champion: {'; '.join(failures)}",
                hint="promote a version whose gates hold (nbops models list " + name + ")",
            )
        check_approvals(registry.settings, target)
    previous = info.aliases.get(alias)
    if previous == str(version):
        raise RegistryError(f"{name} version {version} is already {alias}")
    event = AliasEvent(alias, str(version), previous, by or whoami(), utc_now(), "promote")
    if say:
        say(f"moving {name}@{alias} to version {version}" + (f" from {previous}" if previous else ""))
    registry.store.write("set_registered_model_alias", name, alias, str(version))
    _record(registry, name, event)
    return event


def rollback(registry: Registry, name: str, alias: str = "champion", by: str = "",
             say: Say = None) -> AliasEvent:
    """Undo the last alias move that is still in effect: back to the version it replaced."""
    info = registry.model(name)
    stack: list[str | None] = []
    for event in alias_events(registry, name, alias):
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
    registry.get(name, target)  # a deleted version: a one-line error, not MLflow's exception
    if say:
        say(f"moving {name}@{alias} back to version {target}" + (f" from {current}" if current else ""))
    registry.store.write("set_registered_model_alias", name, alias, target)
    event = AliasEvent(alias, target, current, by or whoami(), utc_now(), "rollback")
    _record(registry, name, event)
    return event
