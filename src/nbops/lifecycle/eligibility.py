"""Whether a version may be champion: the notebook's gates and `champion_gates` in
[tool.nbops.registry] on its metrics, and the approvals `require_approval(s)` asks for.
Pure: settings and plain dataclasses in, reasons (or a RegistryError) out.
"""

from __future__ import annotations

from nbops.core.config import Settings
from nbops.core.errors import RegistryError
from nbops.core.gates import failed_gates, parse_gate
from nbops.lifecycle.versions import ModelInfo, VersionInfo


def required_approvals(settings: Settings) -> int:
    """How many people must approve a version before it may be champion (0: none)."""
    reg = settings.registry
    return int(reg.get("require_approvals") or (1 if reg.get("require_approval") else 0))


def gate_failures(settings: Settings, info: ModelInfo, version: VersionInfo) -> list[str]:
    """Why VERSION may not be champion: the notebook's gates and `champion_gates` in
    [tool.nbops.registry], evaluated on the version's metrics."""
    texts = [*info.gates, *settings.registry.get("champion_gates", [])]
    gates = tuple(parse_gate(t, f"model {info.name}") for t in dict.fromkeys(texts))
    failures = failed_gates(gates, version.metrics)
    if version.tags.get("nbops.gates", "").startswith("failed"):
        failures.insert(0, "its gates failed when it was registered")
    return failures


def check_approvals(settings: Settings, target: VersionInfo) -> None:
    """A RegistryError when TARGET has fewer distinct approvers than the project asks for."""
    needed, have = required_approvals(settings), target.approvers
    if len(have) >= needed:
        return
    who = f" ({', '.join(have)})" if have else ""
    message = f"{target.name} version {target.version} is not approved" + (
        " ([tool.nbops.registry] require_approval)" if needed == 1 else
        f": {len(have)} of {needed} approvers{who}, {needed - len(have)} more needed"
        f" ([tool.nbops.registry] require_approvals = {needed})")
    raise RegistryError(message, hint=f"nbops models approve {target.name} {target.version} --by NAME"
                        + (" (someone who has not approved it yet)" if have else ""))
