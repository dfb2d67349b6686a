"""Read a notebook file into a :class:`Notebook`: parameters, metadata.nbops and a fingerprint.

Reads the JSON directly instead of through nbformat: importing nbformat costs over a second
(jsonschema's format checkers), and planning, listing and checking must stay fast. The kernel
path (papermill) validates with nbformat anyway.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops.core.errors import NotebookError
from nbops.core.gates import Gate, parse_gate

PARAMETERS_TAG = "parameters"


@dataclass(frozen=True)
class Parameter:
    name: str
    default: Any
    type: str  # int, float, bool, str, list, dict, tuple, none, or expr (not a literal)
    help: str = ""  # the line's comment, choices included
    choices: tuple | None = None  # `# choices: a, b`: the only values allowed, typed like the default

    def describe(self) -> str:
        default = self.default if self.type == "expr" else repr(self.default)
        return f"{self.name}: {self.type} = {default}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    gates: tuple[Gate, ...] = ()
    compare: str | None = None
    higher_is_better: bool = True


@dataclass(frozen=True)
class Resources:
    gpu: int = 0
    cpu: int = 1


@dataclass(frozen=True)
class Notebook:
    path: Path
    parameters: tuple[Parameter, ...]
    parameters_cell: int | None  # 1-based over all cells; None when no cell is tagged
    resources: Resources
    timeout: float | None
    data: tuple[str, ...]
    model: ModelSpec | None
    template: str | None
    kernel_name: str
    fingerprint: str
    cells: int = 0
    metadata: dict = field(default_factory=dict, compare=False, repr=False)
    code: tuple[str, ...] = field(default=(), compare=False, repr=False)  # code cell sources
    language: str = ""  # metadata.language_info.name or kernelspec.language; "" when neither
    has_kernelspec: bool = True  # False: written without metadata.kernelspec (python3 assumed)

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    @property
    def stem(self) -> str:
        return self.path.stem


def cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def read_json(path: Path) -> dict:
    """Load a notebook file as a dict, with a clear error for each way it can be broken."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotebookError(f"{path}: no such notebook", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"{path}: cannot read notebook: {exc}") from None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            hint="was it saved completely? try opening it in JupyterLab",
        ) from None
    if isinstance(nb, dict) and nb.get("nbformat") == 3 and isinstance(nb.get("worksheets"), list):
        nb = _from_v3(nb, path)
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path}: not a Jupyter notebook (no 'cells' list)")
    for i, cell in enumerate(nb["cells"], 1):
        if not isinstance(cell, dict) or "cell_type" not in cell:
            raise NotebookError(f"{path}: cell {i}: malformed cell (no cell_type)")
    problem = malformed(nb)
    if problem:
        raise NotebookError(f"{path}: malformed notebook: {problem}")
    if nb.get("nbformat", 4) < 4:
        raise NotebookError(
            f"{path}: nbformat {nb.get('nbformat')} is too old",
            hint="upgrade with `jupyter nbconvert --to notebook --inplace`",
        )
    return nb


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def malformed(nb: dict) -> str | None:
    """What in NB's structure nbformat 4 does not allow and nbops relies on, or None (NB is an
    object with a 'cells' list of objects that have a cell_type)."""
    top: tuple[tuple[str, type], ...] = (("metadata", dict), ("nbformat", int), ("nbformat_minor", int))
    per_cell: tuple[tuple[str, type], ...] = (("metadata", dict), ("outputs", list))
    for key, kind in top:
        if key in nb and (not isinstance(nb[key], kind) or isinstance(nb[key], bool)):
            return f"'{key}' is {_kind(nb[key])}"
    for i, cell in enumerate(nb["cells"], 1):
        source = cell.get("source", "")
        if not isinstance(cell["cell_type"], str):
            return f"cell {i}: 'cell_type' is {_kind(cell['cell_type'])}"
        if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
            return f"cell {i}: 'source' is {_kind(source)}, not text or a list of lines"
        for key, kind in per_cell:
            if key in cell and not isinstance(cell[key], kind):
                return f"cell {i}: '{key}' is {_kind(cell[key])}"
        if not isinstance(cell.get("metadata", {}).get("tags", []) or [], list):
            return f"cell {i}: 'metadata.tags' is {_kind(cell['metadata']['tags'])}"
    return None


def _from_v3(nb: dict, path: Path) -> dict:
    """An nbformat 3 notebook (papermill runs them) as v4, converted the way nbformat does."""
    import nbformat

    try:
        return dict(nbformat.convert(nbformat.from_dict(nb), 4))
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds for a bad v3 file
        raise NotebookError(f"{path}: cannot convert this nbformat 3 notebook: {type(exc).__name__}") from None


def _type_name(value: Any) -> str:
    if value is None:
        return "none"
    return type(value).__name__ if isinstance(value, (bool, int, float, str, list, dict, tuple)) else "expr"


def parse_parameters(source: str, where: str = "") -> tuple[Parameter, ...]:
    """Top-level assignments of the parameters cell, in order; the last assignment of a name wins."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise NotebookError(
            f"{where}: syntax error in the parameters cell, line {exc.lineno}: {exc.msg}"
        ) from None
    lines = source.splitlines()
    found: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        tail = lines[node.end_lineno - 1][node.end_col_offset :] if node.end_lineno else ""
        comment = tail.split("#", 1)[1].strip() if "#" in tail else ""
        try:
            default = ast.literal_eval(value)
            kind = _type_name(default)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            default, kind = ast.get_source_segment(source, value), "expr"
        found.pop(target.id, None)
        param = Parameter(target.id, default, kind, comment)
        found[target.id] = _with_choices(param, f"{where}: parameter '{target.id}'")
    return tuple(found.values())


_CHOICES = re.compile(r"(?:^|[\s;,])choices:(.*)$", re.IGNORECASE)


def split_list(text: str) -> list[str]:
    """`a, 'b, c', [1, 2]` -> ['a', "'b, c'", '[1, 2]']: commas inside quotes or brackets do not split."""
    out, depth, quote, current = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in ("'", '"'):
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(current)
            current = ""
            continue
        current += ch
    out.append(current)
    return [v.strip() for v in out if v.strip()]


def _choice(raw: str, param: Parameter, where: str) -> Any:
    """One declared choice, typed like PARAM's default: a word (or a quoted string) for a string,
    a Python literal otherwise (an int allowed for a float)."""
    if param.type == "str":
        quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
        return raw[1:-1] if quoted else raw
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if param.type in ("none", "expr"):
            return raw
        value = raw
    if param.type == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if param.type not in ("none", "expr") and _type_name(value) != param.type:
        raise NotebookError(f"{where}: choice {raw!r} is not {param.type} like its default {param.default!r}",
                            hint="write the choices like the default, e.g. `depth = 3  # choices: 3, 5, 8`")
    return value


def _with_choices(param: Parameter, where: str) -> Parameter:
    """PARAM with the choices its comment declares (`# choices: forest, svm`), if any."""
    match = _CHOICES.search(param.help)
    if match is None:
        return param
    choices: list[Any] = []
    for raw in split_list(match.group(1)):
        value = _choice(raw, param, where)
        if value not in choices:
            choices.append(value)
    if not choices:
        raise NotebookError(f"{where}: `choices:` lists no values",
                            hint="e.g. `model = \"forest\"  # choices: forest, svm`")
    if param.type != "expr" and param.default not in choices:
        raise NotebookError(f"{where}: its default {param.default!r} is not one of its choices "
                            f"({show_choices(tuple(choices))})", hint="add it to the choices")
    return Parameter(param.name, param.default, param.type, param.help, tuple(choices))


def show_choices(choices: tuple) -> str:
    """`forest, svm` or `3, 5, 8`: the choices as they are declared."""
    return ", ".join(c if isinstance(c, str) else repr(c) for c in choices)


def _model_spec(meta: Any, where: str) -> ModelSpec | None:
    if meta is None:
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise NotebookError(
            f"{where}: metadata.nbops.model needs a 'name'",
            hint='e.g. "model": {"name": "iris-classifier", "gates": ["accuracy >= 0.9"]}',
        )
    gates = meta.get("gates", [])
    if not isinstance(gates, list):
        raise NotebookError(f"{where}: metadata.nbops.model.gates must be a list of strings")
    compare = meta.get("compare")
    return ModelSpec(
        name=meta["name"],
        gates=tuple(parse_gate(g, where) for g in gates),
        compare=compare if isinstance(compare, str) else None,
        higher_is_better=bool(meta.get("higher_is_better", True)),
    )


def _resources(meta: Any, where: str) -> Resources:
    meta = meta or {}
    shape = f"{where}: metadata.nbops.resources must look like {{\"gpu\": 1, \"cpu\": 2}}"
    if not isinstance(meta, dict):
        raise NotebookError(shape)
    gpu, cpu = meta.get("gpu", 0), meta.get("cpu", 1)
    for key, value, low in (("gpu", gpu, 0), ("cpu", cpu, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise NotebookError(f"{where}: metadata.nbops.resources.{key} must be a whole number "
                                f">= {low}, got {value!r} (resources must look like "
                                '{"gpu": 1, "cpu": 2})')
    return Resources(gpu=gpu, cpu=cpu)


def fingerprint_of(nb: dict) -> str:
    """SHA-256 of what defines the computation: cell types and sources, no outputs or ids."""
    h = hashlib.sha256()
    for cell in nb["cells"]:
        h.update(cell["cell_type"].encode())
        h.update(b"\0")
        h.update(cell_source(cell).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def from_dict(nb: dict, path: Path) -> Notebook:
    where = str(path)
    params: tuple[Parameter, ...] = ()
    params_cell = None
    for i, cell in enumerate(nb["cells"], 1):
        if PARAMETERS_TAG in (cell.get("metadata", {}).get("tags") or []):
            if cell["cell_type"] != "code":
                raise NotebookError(f"{where}: cell {i}: the cell tagged 'parameters' is not code")
            params_cell = i
            params = parse_parameters(cell_source(cell), f"{where}: cell {i}")
            break
    meta = nb.get("metadata", {}).get("nbops") or {}
    if not isinstance(meta, dict):
        raise NotebookError(f"{where}: metadata.nbops must be an object")
    timeout = meta.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not math.isfinite(timeout) or timeout <= 0):
        raise NotebookError(f"{where}: metadata.nbops.timeout must be a positive number of seconds")
    data = meta.get("data", [])
    if not isinstance(data, list) or not all(isinstance(d, str) for d in data):
        raise NotebookError(f"{where}: metadata.nbops.data must be a list of paths")
    kernelspec = nb.get("metadata", {}).get("kernelspec") or {}
    kernel = kernelspec.get("name") or "python3"
    language = (nb.get("metadata", {}).get("language_info") or {}).get("name") or kernelspec.get("language") or ""
    return Notebook(
        path=Path(path),
        parameters=params,
        parameters_cell=params_cell,
        resources=_resources(meta.get("resources"), where),
        timeout=float(timeout) if timeout is not None else None,
        data=tuple(data),
        model=_model_spec(meta.get("model"), where),
        template=meta.get("template"),
        kernel_name=kernel,
        fingerprint=fingerprint_of(nb),
        cells=len(nb["cells"]),
        metadata=meta,
        code=tuple(cell_source(c) for c in nb["cells"] if c["cell_type"] == "code"),
        language=language if isinstance(language, str) else "",
        has_kernelspec=bool(kernelspec.get("name")),
    )


def load(path: str | Path) -> Notebook:
    path = Path(path)
    if path.suffix != ".ipynb":
        raise NotebookError(f"{path}: not an .ipynb file", hint="pass notebook files, e.g. notebooks/*.ipynb")
    return from_dict(read_json(path), path)
