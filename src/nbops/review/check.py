"""`nbops check`: the habits that break reproducibility or leak data, found in one process.

Each finding is `path:cell N: CODE message` (N 1-based over all cells, like ruff and nbQA).
A cell silences a code with a comment naming it: `# nbops: ignore[NB003]` (or `ignore` alone
for every code). Notebooks are read as JSON; the pure transforms and rules here never import
nbformat; only `--fix` does (it uses nbstripout's transform, which works on nbformat nodes).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from nbops.core.errors import NotebookError, ReviewError
from nbops.core.files import write_notebook_atomic
from nbops.notebook.document import PARAMETERS_TAG, cell_source, malformed, read_json
from nbops.notebook.inputs import python_source

CODES = {
    "NB000": "notebook cannot be read",
    "NB001": "outputs or execution counts committed",
    "NB002": "no cell tagged 'parameters'",
    "NB003": "randomness without a seed",
    "NB004": "absolute or home-directory path",
    "NB005": "value that looks like a secret",
}
_IGNORE = re.compile(r"#\s*nbops:\s*ignore(?:\[([A-Z0-9, ]+)\])?")

# calls that draw random numbers from a global generator; a seed call anywhere earlier fixes them
_GLOBAL_RANDOM = re.compile(
    r"^(np|numpy)\.random\.(rand|randn|randint|random|random_sample|choice|shuffle|permutation|"
    r"normal|uniform|binomial|poisson|exponential|beta|gamma|multivariate_normal)$"
    r"|^random\.(random|randint|randrange|choice|choices|shuffle|sample|uniform|gauss)$"
    r"|^torch\.(rand|randn|randint|randperm|rand_like|randn_like|randint_like|normal|bernoulli|multinomial)$"
)
_SEEDS = re.compile(
    r"(^|\.)(seed|manual_seed|manual_seed_all|seed_everything|set_seed|set_random_seed)$"
)
# scikit-learn callables that are random unless given random_state
_SKLEARN_RANDOM = re.compile(
    r"(^|\.)(train_test_split|RandomForest\w+|ExtraTrees\w+|GradientBoosting\w+|"
    r"HistGradientBoosting\w+|DecisionTree\w+|KMeans|MiniBatchKMeans|MLP\w+|SGD\w+|"
    r"ShuffleSplit|StratifiedShuffleSplit|RandomizedSearchCV|IsolationForest|BaggingClassifier|"
    r"BaggingRegressor|AdaBoost\w+|TSNE|RandomTreesEmbedding)$"
)
_FOLDS = re.compile(r"(^|\.)(KFold|StratifiedKFold|GroupKFold|RepeatedKFold)$")
_PATH = re.compile(r"^(/(home|Users|root|mnt|media|opt|srv|var|tmp|data|workspace|scratch)/|~[/\\]|[A-Za-z]:\\)")
# a name that holds a secret ends with the secret's word: `api_key`, `DB_PASSWORD`, `client_secret`,
# `dbPassword`; `TOKEN_URL`, `token_pattern`, `max_tokens`, `secret_name` do not
_SECRET_NAME = re.compile(
    r"(^|_|\.)(password|passwd|passphrase|pass|pwd|secret|token|auth_?token|api_?key|apikey|access_?key"
    r"|private_?key|secret_?key|client_?secret|credentials?|authorization)$", re.I
)
_SECRET_VALUE = re.compile(
    r"AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}|glpat-[\w-]{20}|xox[baprs]-[A-Za-z0-9-]{10,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----|sk-[A-Za-z0-9_-]{20,}"
    r"|\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}"  # a JSON web token
)
_URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@", re.I)
_BEARER = re.compile(r"\b(?:bearer|basic)\s+([\w.~+/=-]{8,})", re.I)
# `%env API_KEY=...` / `%set_env` / `!export` / `export` (a %%bash cell): set before ast sees the cell
_ENV_LINE = re.compile(r"^\s*(?:%env|%set_env|!?\s*export)\s+([A-Za-z_]\w*)(?:\s*=\s*|\s+)(\S.*?)\s*$", re.M)
# not a secret but its stand-in: "<your-key>", "xxxx", "***", "${TOKEN}", "{password}", "%s",
# "changeme", an environment variable's name ("OPENAI_API_KEY"), a file path (a secret's file, not
# the secret: "keys/id_rsa", "creds.json"), a plain URL
_PLACEHOLDER = re.compile(
    r"^([x*.#?_-]+|<.*>|\{\w*\}|\$\{?\w+\}?|%\(?\w*\)?s|(?-i:[A-Z][A-Z0-9]*(_[A-Z0-9]+)+)|none|null"
    r"|(\.{0,2}/|~/).*|(?-i:[a-z0-9_.-]+(/[a-z0-9_.-]+)+)|.*\.(json|pem|key|txt|ya?ml|env|cfg|ini|toml)"
    r"|[a-z][a-z0-9+.-]*://.*)$"
    r"|your|change.?me|placeholder|replace|redacted|dummy|example|xxx|todo|fixme|insert|\{\{",
    re.I,
)
# a cell none of whose text matches this cannot trigger NB003-NB005: skip parsing it (speed).
# Matched against the lowercased source: re.IGNORECASE made this one search cost 4x more.
_TRIGGERS = re.compile(
    r"random|seed|rng|forest|tree|boost|kmeans|mlp|sgd|split|searchcv|kfold|bagging|tsne|torch"
    r"|[\"']/|[\"']~|:\\|pass|pwd|secret|token|key|akia|gh[pousr]_|xox|begin|sk-|eyj|://|bearer|basic"
    r"|glpat|credential|authorization"
)
_SKIP_DIRS = {".venv", "venv", "runs", "mlruns", ".ipynb_checkpoints", "node_modules", ".git", ".nbops"}


@dataclass(frozen=True)
class Finding:
    path: str
    cell: int | None
    code: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:cell {self.cell}" if self.cell else self.path
        return f"{where}: {self.code} {self.message}"


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _ignored(source: str) -> set[str] | None:
    """Codes this cell silences; an empty set means all of them; None means none."""
    codes: set[str] | None = None
    for m in _IGNORE.finditer(source):
        if m.group(1) is None:
            return set()
        codes = (codes or set()) | {c.strip() for c in m.group(1).split(",") if c.strip()}
    return codes


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _none(node) -> bool:
    return node is None or (isinstance(node, ast.Constant) and node.value is None)


def _placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.search(value))


def _secret_in(text: str) -> str | None:
    """What credential TEXT holds, if any (a stand-in such as `user:<password>@` is none)."""
    if any(not _placeholder(m.group()) for m in _SECRET_VALUE.finditer(text)):
        return "string looks like a credential"
    if any(not _placeholder(m.group(1)) for m in _URL_CREDENTIALS.finditer(text)):
        return "URL holds a password"
    if any(re.search(r"\d", m.group(1)) and not _placeholder(m.group(1)) for m in _BEARER.finditer(text)):
        return "string holds an Authorization token"
    return None


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _named_literal(name: str | None, value: ast.AST | None) -> bool:
    """A secret's name (`api_key`, `dbPassword`, "X-API-Key") given a literal string that is not
    a stand-in (nor a credential _secret_in reports on its own)."""
    text = _text(value)
    if not name or text is None:
        return False
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace("-", "_").replace(" ", "_")
    text = text.strip()
    return (bool(_SECRET_NAME.search(snake)) and len(text) >= 4 and not _placeholder(text)
            and text.lower() not in (name.lower(), snake.lower().rsplit(".", 1)[-1]) and _secret_in(text) is None)


def _secret_findings(number: int, nodes: list[ast.AST]) -> list[tuple[int, str, str]]:
    out: list[tuple[int, str, str]] = []
    advice = "; read it from the environment"
    for node in nodes:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            kind = _secret_in(node.value)
            if kind:
                out.append((number, "NB005", kind + advice))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                name = _text(t.slice) if isinstance(t, ast.Subscript) else _dotted(t)
                if _named_literal(name, node.value):
                    out.append((number, "NB005", f"'{name}' is assigned a literal{advice}"))
        elif isinstance(node, ast.Call):
            for k in node.keywords:
                if _named_literal(k.arg, k.value):
                    out.append((number, "NB005", f"'{k.arg}=' is given a literal{advice}"))
            var = _text(node.args[0]) if len(node.args) == 2 else None
            if _dotted(node.func).endswith(("environ.setdefault", "putenv")) and _named_literal(var, node.args[-1]):
                out.append((number, "NB005", f"environment variable '{var}' is set to a literal{advice}"))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if _named_literal(_text(key), value):
                    out.append((number, "NB005", f"key '{_text(key)}' holds a literal{advice}"))
    return out


def _env_magic_findings(number: int, source: str) -> list[tuple[int, str, str]]:
    """`%env API_KEY=...`, `%set_env`, `!export`, `export` in a %%bash cell (ast never sees them)."""
    out = []
    for m in _ENV_LINE.finditer(source):
        name, value = m.group(1), m.group(2).strip("'\"")
        if _secret_in(value) or _named_literal(name, ast.Constant(value)):
            out.append((number, "NB005", f"environment variable '{name}' is set to a literal; "
                                         "set it outside the notebook"))
    return out


def code_findings(cells: list[tuple[int, str]]) -> list[tuple[int, str, str]]:
    """(cell, code, message) for NB003/NB004/NB005 over the code cells, in order."""
    out: list[tuple[int, str, str]] = []
    seeded = False
    for number, source in cells:
        if not _TRIGGERS.search(source.lower()):
            continue
        out += _env_magic_findings(number, source)
        try:
            tree = ast.parse(python_source(source))
        except SyntaxError:
            continue  # ruff reports syntax errors
        nodes = list(ast.walk(tree))
        calls = sorted((n for n in nodes if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset))
        for call in calls:
            name = _dotted(call.func)
            if _SEEDS.search(name) or (name.endswith("default_rng") and call.args):
                seeded = True
            elif name.endswith("default_rng") and not call.args and _none(_kw(call, "seed")):
                out.append((number, "NB003", f"{name}() without a seed"))
            elif _GLOBAL_RANDOM.match(name) and not seeded:
                out.append((number, "NB003", f"{name}() before any seed is set (e.g. np.random.seed(...))"))
            elif _SKLEARN_RANDOM.search(name) and _none(_kw(call, "random_state")) and not seeded:
                out.append((number, "NB003", f"{name}(...) without random_state"))
            elif (_FOLDS.search(name) and isinstance(_kw(call, "shuffle"), ast.Constant)
                  and _kw(call, "shuffle").value is True and _none(_kw(call, "random_state")) and not seeded):
                out.append((number, "NB003", f"{name}(shuffle=True) without random_state"))
        for node in nodes:
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _PATH.match(node.value):
                out.append((number, "NB004", f"path {node.value[:60]!r} only exists on one machine; "
                                             "use a path relative to the project"))
        out += _secret_findings(number, nodes)
    return out


def _malformed_file(path: Path) -> str | None:
    """malformed() of a file read_json stumbled over (e.g. on "nbformat": "4"), if it can say."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        return malformed(nb) if isinstance(nb, dict) else None
    except (OSError, TypeError, AttributeError, KeyError, ValueError):
        return None


def check_notebook(nb: dict, path: str, needs_parameters: bool) -> list[Finding]:
    findings: list[Finding] = []
    ignores: dict[int, set[str] | None] = {}
    code_cells: list[tuple[int, str]] = []
    has_params = False
    for number, cell in enumerate(nb["cells"], 1):
        source = cell_source(cell)
        ignores[number] = _ignored(source)
        if PARAMETERS_TAG in (cell.get("metadata", {}).get("tags") or []):
            has_params = True
        if cell["cell_type"] != "code":
            continue
        code_cells.append((number, source))
        if cell.get("outputs") or cell.get("execution_count") is not None:
            findings.append(Finding(path, number, "NB001", "has outputs or an execution count (nbops check --fix strips them)"))
    if needs_parameters and not has_params:
        findings.append(Finding(path, None, "NB002", "no cell tagged 'parameters' (tag the cell of defaults in JupyterLab)"))
    findings += [Finding(path, n, code, msg) for n, code, msg in code_findings(code_cells)]
    return [f for f in findings if not _silenced(f, ignores)]


def _silenced(finding: Finding, ignores: dict[int, set[str] | None]) -> bool:
    codes = ignores.get(finding.cell) if finding.cell else None
    return codes is not None and (not codes or finding.code in codes)


def start_ruff(paths: list[Path], root: Path) -> subprocess.Popen | None:
    """ruff on the notebooks' code, one process, its native notebook support; started early so
    it runs while nbops's own checks do."""
    ruff = shutil.which("ruff", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if not ruff or not paths:
        return None
    return subprocess.Popen(
        [ruff, "check", "--output-format", "json", "--no-cache", "--exit-zero", "--force-exclude",
         *map(str, paths)],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def ruff_findings(process: subprocess.Popen | None, shown: dict[Path, str]) -> list[Finding]:
    if process is None:
        return []
    stdout, stderr = process.communicate()
    try:
        items = json.loads(stdout or "[]")
    except ValueError:
        raise ReviewError(f"ruff failed: {stderr.strip()[:300]}") from None
    out = []
    for item in items:
        path = shown.get(Path(item["filename"]).resolve(), item["filename"])
        out.append(Finding(path, item.get("cell"), item.get("code") or "ruff", item["message"]))
    return out


def find_notebooks(root: Path, args: list[str]) -> list[Path]:
    targets = [Path(a) for a in args] or [root]
    found: list[Path] = []
    for t in targets:
        if t.is_dir():
            for dirpath, dirnames, filenames in os.walk(t):
                dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
                found += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".ipynb")]
        elif not t.exists():
            raise NotebookError(f"{t}: no such notebook or folder", hint="nbops check [NOTEBOOK|FOLDER]...")
        elif t.suffix == ".ipynb":
            found.append(t)
        else:
            raise NotebookError(f"{t}: not a notebook (.ipynb) or a folder",
                                hint="nbops check [NOTEBOOK|FOLDER]...")
    return found


def strip_outputs(nb: dict) -> dict:
    """nbstripout's transform, keeping cell ids and metadata.nbops (it keeps unknown metadata)."""
    import nbformat
    from nbstripout._utils import strip_output

    node = nbformat.from_dict(nb)
    stripped = strip_output(node, keep_output=False, keep_count=False, keep_id=True)
    return json.loads(json.dumps(stripped))


def run_check(root: Path, args: list[str], needs_parameters_dirs: tuple[str, ...], fix: bool = False,
              lint: bool = True) -> list[Finding]:
    paths = find_notebooks(root, args)
    findings: list[Finding] = []
    shown: dict[Path, str] = {}
    # ruff reads the files as they are now; --fix only strips outputs, which ruff ignores
    ruff = start_ruff(paths, root) if lint else None
    for path in paths:
        full = path.resolve()  # once: resolving costs a system call per path component
        rel = os.path.relpath(full, root) if full.is_relative_to(root) else str(path)
        shown[full] = rel
        needs = any(Path(rel).parts[:1] == (d,) for d in needs_parameters_dirs)
        try:
            nb = read_json(path)
            problem = malformed(nb)
            found = [] if problem else check_notebook(nb, rel, needs)
        except NotebookError as exc:
            findings.append(Finding(rel, None, "NB000", exc.message.split(": ", 1)[-1]))
            continue
        except (TypeError, AttributeError, KeyError, ValueError) as exc:  # read_json or the checks
            problem = _malformed_file(path) or f"{type(exc).__name__}: {exc}"
        if problem:
            findings.append(Finding(rel, None, "NB000", f"malformed notebook: {problem}"))
            continue
        if fix and any(f.code == "NB001" for f in found):
            # through a symlink to its target: replacing the link with a file would lose it
            write_notebook_atomic(full, strip_outputs(nb))
            found = [f for f in found if f.code != "NB001"]
        findings += found
    unreadable = {f.path for f in findings if f.code == "NB000"}  # one line each: not ruff's too
    findings += [f for f in ruff_findings(ruff, shown) if f.path not in unreadable]
    return sorted(findings, key=lambda f: (f.path, f.cell or 0, f.code))


def as_json(findings: list[Finding]) -> str:
    return json.dumps([asdict(f) for f in findings], indent=1)
