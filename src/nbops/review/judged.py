"""What changed in how a notebook is judged, which its cell diff does not show: the model's gates,
name and compare metric (`metadata.nbops.model`), the smoke test's expectations
(`metadata.nbops.test.expect`), the parameters' defaults, resources, timeout, kernel and declared
data. review.md opens each notebook's section with it (review/markdown.py), so a commit that only
edits metadata is never reported as "0 cells changed" and nothing else (issue 23).

A gate is **loosened** when a run it stopped before may now pass: its threshold lowered for `>=`
and `>`, raised for `<=` and `<`, `>` relaxed to `>=` (or `<` to `<=`) at the same threshold, or
the gate removed. A loosened gate is a risk; a tightened or added one is not. Gates are read with
core/gates.py's parser; one that does not parse is compared as its text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from nbops.core.errors import NotebookError
from nbops.core.gates import Gate, parse_gate
from nbops.notebook.document import Resources

_SIDE = {">=": "lower", ">": "lower", "<=": "upper", "<": "upper", "==": "==", "!=": "!="}
_MAX_TEXT = 200  # one change's text; a huge metadata value is cut, the HTML page has it whole
NEW, REMOVED = "(new)", "(removed)"


@dataclass(frozen=True)
class Judged:
    """One change: WHAT changed (e.g. "loosened gate", "resources"), TEXT says how
    ("accuracy >= 0.8 -> accuracy >= 0.1"), RISK when it lets a worse model through."""

    what: str
    text: str
    risk: bool = False

    def __str__(self) -> str:
        return f"{'⚠ ' if self.risk else ''}{self.what}: {self.text}"


def _show(value: object) -> str:
    if value is None:
        return "(unset)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _nbops(nb: dict | None) -> dict:
    return _dict(_dict((nb or {}).get("metadata")).get("nbops"))


def _gates(value: object) -> list[Gate | str]:
    """Each gate parsed; one that does not parse stays its text (reviewed, not rejected)."""
    out: list[Gate | str] = []
    for item in value if isinstance(value, list) else []:
        try:
            out.append(parse_gate(str(item)))
        except NotebookError:
            out.append(str(item))
    return out


def loosened(old: Gate, new: Gate) -> bool:
    """Whether NEW lets through a value OLD stopped (both on the same metric and side)."""
    if _SIDE[old.op] == "lower":
        return new.threshold < old.threshold or (new.threshold == old.threshold and (old.op, new.op) == (">", ">="))
    if _SIDE[old.op] == "upper":
        return new.threshold > old.threshold or (new.threshold == old.threshold and (old.op, new.op) == ("<", "<="))
    return False  # == and != bound nothing in one direction: said as changed


def gate_changes(base: object, head: object, kind: str = "gate") -> list[Judged]:
    """Gates added, removed and changed between two lists of gate texts. A changed gate is paired
    with a base gate on the same metric that bounds it from the same side."""
    old, new = _gates(base), _gates(head)
    for gate in list(new):  # unchanged gates (in any order) say nothing
        if gate in old:
            old.remove(gate)
            new.remove(gate)
    out: list[Judged] = []
    for gate in new:
        pair = next((g for g in old if isinstance(g, Gate) and isinstance(gate, Gate)
                     and (g.metric, _SIDE[g.op]) == (gate.metric, _SIDE[gate.op])), None)
        if pair is None or not isinstance(gate, Gate):
            invalid = "" if isinstance(gate, Gate) else " (not a valid gate)"
            out.append(Judged(f"{kind} added", f"{NEW} -> {gate}{invalid}"))
            continue
        old.remove(pair)
        if loosened(pair, gate):
            out.append(Judged(f"loosened {kind}", f"{pair} -> {gate}", risk=True))
        elif _SIDE[pair.op] in ("lower", "upper"):
            out.append(Judged(f"tightened {kind}", f"{pair} -> {gate}"))
        else:
            out.append(Judged(f"{kind} changed", f"{pair} -> {gate}"))
    out[:0] = [Judged(f"loosened {kind}", f"{gate} -> {REMOVED}", risk=True) for gate in old]
    return out


def _values(what: str, old: dict, new: dict, defaults: dict | None = None) -> list[Judged]:
    """`key: old -> new` for each key of OLD or NEW whose value differs (DEFAULTS fill a missing key)."""
    defaults = defaults or {}
    out = []
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key, defaults.get(key)), new.get(key, defaults.get(key))
        if a != b:
            out.append(Judged(what, f"{key}: {_show(a)} -> {_show(b)}"))
    return out


def _data(old: object, new: object) -> list[Judged]:
    a = [str(d) for d in old] if isinstance(old, list) else []
    b = [str(d) for d in new] if isinstance(new, list) else []
    return ([Judged("data", f"{d} -> {REMOVED}") for d in a if d not in b]
            + [Judged("data", f"{NEW} -> {d}") for d in b if d not in a])


def _kernel(nb: dict | None) -> object:
    return _dict(_dict((nb or {}).get("metadata")).get("kernelspec")).get("name")


_KNOWN = ("model", "test", "resources", "timeout", "data")


def judged_changes(base: dict | None, head: dict | None, parameters: Sequence[str] = ()) -> list[Judged]:
    """What changed in how a notebook is judged, from BASE to HEAD (notebooks as JSON; None: absent).
    PARAMETERS: its parameters' changes, `name: old -> new` (review/changes.py's)."""
    old, new = _nbops(base), _nbops(head)
    old_model, new_model = _dict(old.get("model")), _dict(new.get("model"))
    out = gate_changes(old_model.get("gates"), new_model.get("gates"))
    out += gate_changes(_dict(old.get("test")).get("expect"), _dict(new.get("test")).get("expect"),
                        "test expectation")
    model_keys = {k: v for k, v in old_model.items() if k != "gates"}
    out += _values("model", model_keys, {k: v for k, v in new_model.items() if k != "gates"},
                   {"higher_is_better": True} if old_model and new_model else None)
    out += [Judged("parameter", p) for p in parameters]
    resources = Resources()
    out += _values("resources", _dict(old.get("resources")), _dict(new.get("resources")),
                   {"gpu": resources.gpu, "cpu": resources.cpu})
    out += _values("resources", {"timeout": old.get("timeout")}, {"timeout": new.get("timeout")})
    if _kernel(base) != _kernel(head):
        out.append(Judged("kernel", f"{_show(_kernel(base))} -> {_show(_kernel(head))}"))
    out += _data(old.get("data"), new.get("data"))
    old_test = {k: v for k, v in _dict(old.get("test")).items() if k != "expect"}
    out += _values("test", old_test, {k: v for k, v in _dict(new.get("test")).items() if k != "expect"})
    out += _values("metadata.nbops", {k: v for k, v in old.items() if k not in _KNOWN},
                   {k: v for k, v in new.items() if k not in _KNOWN})
    return sorted(out, key=lambda j: not j.risk)  # stable: risks first, then in the order above


def plain_lines(judged: Sequence[Judged], limit: int = 30) -> list[str]:
    """The judged block as plain text (the terminal's `nbops review`, index.html): a heading that
    counts the risks, then one line per change, risks first, at most LIMIT of them."""
    if not judged:
        return []
    risks = sum(j.risk for j in judged)
    head = "What changed in how it is judged" + (f" (⚠ {risks} risk(s))" if risks else "") + ":"
    lines = [head] + [f"  {'⚠ RISK ' if j.risk else ''}{j.what}: {j.text}" for j in judged[:limit]]
    if len(judged) > limit:
        lines.append(f"  … and {len(judged) - limit} more change(s): see review.md or the notebook's page")
    return lines
