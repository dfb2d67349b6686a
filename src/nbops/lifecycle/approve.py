"""Recording an approval of a model version (`nbops models approve`): one more entry in its
history (lifecycle/approvals.py's format), and the `nbops.approved_*` tags set to the latest."""

from __future__ import annotations

from nbops.core.errors import RegistryError
from nbops.lifecycle.approvals import Approval, approval_tag, has_history
from nbops.lifecycle.registry import Registry
from nbops.lifecycle.registry_store import Say
from nbops.lifecycle.versions import VersionInfo, utc_now


def approve(registry: Registry, name: str, version: str, by: str, note: str = "",
            say: Say = None) -> VersionInfo:
    """Add an approval to the version's history (the same person again is kept, counts once)."""
    by = by.strip()
    if not by:
        raise RegistryError("--by needs a name", hint="who approves, e.g. --by alice")
    target = registry.get(name, version)
    v = target.version
    if say:
        say(f"recording {by}'s approval of {name} version {v}")
    if target.approved_by and not has_history(target.tags):
        _write_approval(registry, name, v, target.approvals[0])  # approved before the history was kept
    approval = Approval(by, utc_now(), note[:5000])
    _write_approval(registry, name, v, approval)
    for key, value in {"nbops.approved_by": by, "nbops.approved_at": approval.at,
                       "nbops.approval_note": approval.note}.items():
        if value:
            registry.store.write("set_model_version_tag", name, v, key, value)
        elif key in target.tags:  # the latest approval's note, never an older one's
            registry.store.write("delete_model_version_tag", name, v, key)
    return registry.get(name, v)


def _write_approval(registry: Registry, name: str, version: str, approval: Approval) -> None:
    registry.store.write("set_model_version_tag", name, version, *approval_tag(approval))
