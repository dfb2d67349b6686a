"""Approvals of a model version: a history of version tags, each person counted once
(lifecycle/approve.py records one). Pure: the tags' format, read and written.

One version tag per approval, `nbops.approval.<ns>` holding JSON (who, when, note), keyed by time
like the alias events so two approvals at once never overwrite each other; `nbops.approved_by`,
`nbops.approved_at` and `nbops.approval_note` hold the latest one (all that versions approved
before the history have). A person counts once however often they approve;
`[tool.nbops.registry] require_approvals = N` asks for N people.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

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


def has_history(tags: dict[str, str]) -> bool:
    """Whether the version's approvals are kept as a history (else only `nbops.approved_*`)."""
    return any(k.startswith(_APPROVAL) for k in tags)


def approval_tag(approval: Approval) -> tuple[str, str]:
    """The version tag (key, value) that records APPROVAL, keyed by the time it is written."""
    return f"{_APPROVAL}{time.time_ns():020d}", json.dumps(
        {"by": approval.by, "at": approval.at, "note": approval.note})


def distinct_approvers(approvals: list[Approval]) -> list[str]:
    """Who approved, each person once (names compared without case or surrounding spaces)."""
    seen: dict[str, str] = {}
    for a in approvals:
        seen.setdefault(a.by.strip().casefold(), a.by.strip())
    return list(seen.values())
