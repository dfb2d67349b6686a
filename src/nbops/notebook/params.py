"""Turn `-p NAME=VALUE` and `-f params.yaml` into typed values, checked against a notebook.

Runs before any kernel starts or any MLflow run is created, so bad input costs nothing.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from nbops.core.errors import ParameterError
from nbops.notebook.document import Notebook, Parameter, show_choices

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_CONTAINERS = {"list": list, "dict": dict, "tuple": (list, tuple)}

# a parameters file: at most this big, and this many values once YAML aliases are expanded
MAX_PARAMS_BYTES = 1024 * 1024
MAX_PARAMS_VALUES = 100_000


def parse_assignments(items: list[str]) -> dict[str, str]:
    """`["a=1", "b=x"]` -> `{"a": "1", "b": "x"}`; values stay strings until typed."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ParameterError(
                f"bad parameter {item!r}", hint="write -p NAME=VALUE, e.g. -p n_estimators=200"
            )
        out[name] = value
    return out


def load_params_file(path: str | Path) -> dict[str, Any]:
    import yaml  # small, but only needed here

    path = Path(path)
    try:
        if path.is_dir():
            raise ParameterError(f"{path}: is a folder, not a parameters file", hint="-f params.yaml")
        if path.stat().st_size > MAX_PARAMS_BYTES:
            raise ParameterError(f"{path}: larger than {MAX_PARAMS_BYTES // 1024} KiB",
                                 hint="a parameters file holds NAME: VALUE lines")
        text = path.read_bytes().decode("utf-8")
        data = yaml.safe_load(text)
    except FileNotFoundError:
        raise ParameterError(f"{path}: no such parameters file") from None
    except UnicodeDecodeError:
        raise ParameterError(f"{path}: not a text file (UTF-8)", hint="-f takes a YAML file") from None
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ParameterError(f"{path}: not valid YAML{where}", hint="expected NAME: VALUE lines") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ParameterError(f"{path}: expected a mapping of parameter names to values")
    if _expanded_size(data, MAX_PARAMS_VALUES) > MAX_PARAMS_VALUES:  # YAML aliases share nodes
        raise ParameterError(f"{path}: expands to more than {MAX_PARAMS_VALUES:,} values "
                             "(YAML anchors and aliases)", hint="write the values out")
    return data


def _expanded_size(value: Any, limit: int) -> int:
    """How many values VALUE holds once its shared (aliased) parts are written out, counting up
    to just past LIMIT: a YAML 'billion laughs' file is small but expands without bound."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _yaml_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def coerce(param: Parameter, value: Any, where: str) -> Any:
    """Convert `value` (a CLI string or a YAML value) to the type of the parameter's default,
    and check it is one of the parameter's choices when it declares some."""
    typed = _convert(param, value, where)
    if param.choices is not None and typed not in param.choices:
        close = difflib.get_close_matches(str(typed), [str(c) for c in param.choices], n=1, cutoff=0.6)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        raise ParameterError(f"{where}: parameter '{param.name}' got {value!r}, not one of its choices: "
                             f"{show_choices(param.choices)}{suggestion}")
    return typed


def _convert(param: Parameter, value: Any, where: str) -> Any:
    """`value` as the type of the parameter's default (a ParameterError when it is not one)."""

    def reject() -> ParameterError:
        return ParameterError(
            f"{where}: parameter '{param.name}' expects {param.type} "
            f"(default {param.default!r}), got {value!r}",
            hint=f"e.g. -p {param.name}={param.default!r}" if param.type != "expr" else None,
        )

    kind = param.type
    if kind in ("none", "expr"):
        return _yaml_value(value) if isinstance(value, str) else value
    if kind == "str":
        return value if isinstance(value, str) else str(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise reject()
    if kind == "int":
        if isinstance(value, bool):
            raise reject()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""))
            except ValueError:
                pass
        raise reject()
    if kind == "float":
        if isinstance(value, bool):
            raise reject()
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise reject()
        if not math.isfinite(number):  # 1e999 overflows to inf; nan compares false with everything
            raise ParameterError(f"{where}: parameter '{param.name}' must be a finite number, got {value!r}",
                                 hint="inf and nan are refused: give a finite value")
        return number
    if kind in _CONTAINERS:
        parsed = _yaml_value(value) if isinstance(value, str) else value
        if isinstance(parsed, _CONTAINERS[kind]):  # type: ignore[arg-type]
            return list(parsed) if kind == "tuple" else parsed
        raise reject()
    return value


def closest(name: str, names: list[str]) -> str:
    """The most similar name, however weak the match: a suggestion always helps more than none
    ('' when there are no names at all)."""
    if not names:
        return ""
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    if close:
        return close[0]
    return max(names, key=lambda n: difflib.SequenceMatcher(None, name.lower(), n.lower()).ratio())


def resolve(notebook: Notebook, overrides: dict[str, Any]) -> dict[str, Any]:
    """Typed values for the overridden parameters; an unknown name is an error with a suggestion."""
    where = str(notebook.path)
    names = [p.name for p in notebook.parameters]
    typed: dict[str, Any] = {}
    for name, value in overrides.items():
        param = notebook.parameter(name)
        if param is None:
            if notebook.parameters_cell is None:
                raise ParameterError(
                    f"{where}: unknown parameter '{name}': the notebook has no cell tagged 'parameters'",
                    hint="tag the cell holding the defaults with 'parameters' in JupyterLab",
                )
            suggestion = f"; did you mean '{closest(name, names)}'?" if names else ""
            raise ParameterError(
                f"{where}: unknown parameter '{name}'{suggestion}",
                hint=f"its parameters are: {', '.join(names)}",
            )
        typed[name] = coerce(param, value, where)
    return typed


def values_used(notebook: Notebook, typed: dict[str, Any]) -> dict[str, Any]:
    """Every parameter's value in this run: defaults, then the overrides."""
    values = {p.name: p.default for p in notebook.parameters}
    values.update(typed)
    return values
