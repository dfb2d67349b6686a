"""Model gates: conditions like ``accuracy >= 0.9`` that must hold before a model is registered."""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

from nbops.core.errors import NotebookError

_OPS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_GATE = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*(>=|<=|==|!=|>|<)\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"

    def check(self, metrics: dict[str, float]) -> str | None:
        """None when the gate holds, else the reason it does not."""
        if self.metric not in metrics:
            return f"gate '{self}' failed: metric '{self.metric}' was not recorded"
        value = metrics[self.metric]
        if isinstance(value, float) and math.isnan(value):
            return f"gate '{self}' failed: {self.metric} is NaN"
        if not _OPS[self.op](value, self.threshold):
            return f"gate '{self}' failed: {self.metric} = {value:.4g}"
        return None


def parse_gate(text: str, where: str = "") -> Gate:
    match = _GATE.match(str(text))
    if not match:
        raise NotebookError(
            f"{where}: bad gate {text!r} in metadata.nbops.model.gates",
            hint="write gates as 'METRIC OP NUMBER', e.g. 'accuracy >= 0.9'",
        )
    try:
        threshold = float(match.group(3))
    except ValueError:
        raise NotebookError(
            f"{where}: bad number in gate {text!r}", hint="e.g. 'accuracy >= 0.9'"
        ) from None
    return Gate(match.group(1), match.group(2), threshold)


def failed_gates(gates: tuple[Gate, ...], metrics: dict[str, float]) -> list[str]:
    return [reason for gate in gates if (reason := gate.check(metrics))]
