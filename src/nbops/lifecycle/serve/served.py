"""One loaded version behind an alias, and turning a decoded request into its model input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nbops.lifecycle.serve.batching import Batcher
from nbops.lifecycle.serve.payload import PayloadError


@dataclass(frozen=True)
class Served:
    """A loaded version behind one alias, and what its requests need precomputed."""

    model: Any  # models.LoadedModel
    name: str
    alias: str
    version: str
    names: tuple[str, ...]  # the signature's columns, in order; empty without a signature
    fast: bool  # all-double columns into a sklearn model: a numpy matrix, no DataFrame
    headers: dict[str, str]
    batcher: Batcher | None  # for fast-path matrices

    @classmethod
    def of(cls, model, alias: str) -> Served:
        names = tuple(c.name for c in model.columns)
        fitted = getattr(model.predictor, "feature_names_in_", None)
        fast = ((model.flavor == "sklearn" and bool(names)
                 and all(c.kind == "double" and c.required for c in model.columns)
                 and (fitted is None or tuple(str(n) for n in fitted) == names))
                or model.tensor is not None)  # a tensor model takes a matrix (cast to its dtype)
        version = model.version.version
        headers = {"X-Model-Name": model.version.name, "X-Model-Version": version,
                   "X-Model-Alias": alias}
        return cls(model, model.version.name, alias, version, names, fast, headers,
                   Batcher(model.predict) if fast else None)

    def prepare(self, shape: str, data: Any) -> tuple[Any, int]:
        """(model input, rows). Raises models.InputError or PayloadError naming the field."""
        if self.fast:
            matrix = self._matrix(shape, data)
            if matrix is not None:
                return matrix, matrix.shape[0]
        frame = self._frame(shape, data)
        return frame, len(frame)

    def _matrix(self, shape: str, data: Any):
        """A float64 matrix in the signature's column order, or None to take the DataFrame path
        (which says what is wrong, or accepts what numpy would not)."""
        import numpy as np

        names = self.names
        if not names:  # a tensor model without feature names: rows only, in its own order
            if shape != "rows" or _has_flag(data):
                return None
            try:
                matrix = np.array(data, dtype=np.float64)
            except (ValueError, TypeError):
                return None
            return matrix if matrix.ndim == 2 and matrix.shape[1] == self.model.tensor.width else None
        try:
            if shape == "records":
                rows = [[record[n] for n in names] for record in data]
            elif shape == "split":
                columns, rows = data
                if tuple(columns) != names:
                    if _has_flag(rows):
                        return None
                    index = [columns.index(n) for n in names]
                    matrix = np.array(rows, dtype=np.float64)
                    return matrix[:, index] if matrix.ndim == 2 and matrix.shape[1] == len(columns) else None
            elif shape == "columns":
                if _has_flag([data[n] for n in names]):
                    return None
                matrix = np.array([data[n] for n in names], dtype=np.float64).T
                return matrix if matrix.ndim == 2 else None
            else:
                rows = data
            if _has_flag(rows):
                return None  # the DataFrame path refuses true/false naming the column
            matrix = np.array(rows, dtype=np.float64)
        except (KeyError, ValueError, TypeError, IndexError):
            return None
        return matrix if matrix.ndim == 2 and matrix.shape[1] == len(names) else None

    def _frame(self, shape: str, data: Any):
        import pandas as pd

        from nbops.lifecycle.models import InputError

        names = self.names
        if shape == "records":
            for i, record in enumerate(data):
                for col in self.model.columns:
                    if col.required and col.name not in record:
                        raise InputError(f"missing column '{col.name}' in record {i}; the model "
                                         f"expects {', '.join(names)}")
            table = pd.DataFrame.from_records(data)
        elif shape == "split":
            columns, rows = data
            bad = next((i for i, r in enumerate(rows) if len(r) != len(columns)), None)
            if bad is not None:
                raise PayloadError(f"row {bad} of 'data' has {len(rows[bad])} values for "
                                   f"{len(columns)} columns")
            table = pd.DataFrame(rows, columns=columns)
        elif shape == "rows" and not names and self.model.tensor is not None:
            width = self.model.tensor.width
            bad = next((i for i, r in enumerate(data) if len(r) != width), None)
            if bad is not None:
                raise PayloadError(f"row {bad} has {len(data[bad])} values; the model takes {width}")
            table = pd.DataFrame(data)
        elif shape == "rows":
            if not names:
                raise PayloadError("rows without column names need a model with a column signature; "
                                   "send records or {\"columns\": [...], \"data\": [...]}")
            bad = next((i for i, r in enumerate(data) if len(r) != len(names)), None)
            if bad is not None:
                raise PayloadError(f"row {bad} has {len(data[bad])} values; the model expects "
                                   f"{len(names)} ({', '.join(names)})")
            table = pd.DataFrame(data, columns=list(names))
        else:
            table = pd.DataFrame(data)
        try:
            return self.model.frame(table)
        except InputError:
            raise
        except (TypeError, ValueError) as exc:  # pandas refusing a value the checks let through
            raise InputError(f"input does not fit the model's signature: {exc}") from None


def _has_flag(rows: Any) -> bool:
    """Whether a JSON true/false sits among the values (numpy would take it as 1.0/0.0)."""
    return any(v is True or v is False for row in rows for v in (row if isinstance(row, list) else (row,)))
