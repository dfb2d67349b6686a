"""`nbops check`: the habits that break reproducibility or leak data, found in one process.

Each finding is `path:cell N:line L: CODE message` (N 1-based over all cells, like ruff and nbQA;
L 1-based within the cell, where a finding has one); committed outputs are one finding per
notebook with its count of cells (issue 23: one line per cell made thousands).
A cell silences a code with a comment naming it: `# nbops: ignore[NB003]` (or `ignore` alone
for every code). Notebooks are read as JSON; the pure transforms and rules here never import
nbformat; only `--fix` does (notebook/strip.py: nbstripout's transform, the git filter's too).
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
from nbops.notebook.document import PARAMETERS_TAG, cell_source, malformed, read_json
from nbops.notebook.strip import filtered, strip_file, strippable
from nbops.review.check_magics import code_text, false_positive, magic_names
from nbops.review.check_secrets import dotted as _dotted
from nbops.review.check_secrets import env_magic_findings, secret_findings
from nbops.review.check_secrets import text as _text

CODES = {
    "NB000": "notebook cannot be read",
    "NB001": "outputs, execution counts or editor state committed",
    "NB002": "no cell tagged 'parameters'",
    "NB003": "randomness without a seed",
    "NB004": "absolute or home-directory path",
    "NB005": "value that looks like a secret",
}
_IGNORE = re.compile(r"#\s*nbops:\s*ignore(?:\[([A-Z0-9, ]+)\])?")

# the global generators, the calls that draw from each, and the calls that seed each (by the
# qualified name a call resolves to through the notebook's imports: `from numpy.random import
# randn` makes `randn` numpy's); a seed earlier in the notebook fixes that generator only
_DRAWS = {
    "numpy": re.compile(
        r"^numpy\.random\.(rand|randn|randint|random_integers|random|random_sample|ranf|sample|choice|shuffle"
        r"|permutation|normal|standard_normal|uniform|binomial|poisson|exponential|beta|gamma|lognormal"
        r"|laplace|logistic|geometric|multinomial|dirichlet|multivariate_normal|chisquare|triangular)$"),
    "python": re.compile(r"^random\.(random|randint|randrange|choice|choices|shuffle|sample|uniform|gauss"
                         r"|normalvariate|triangular|betavariate|expovariate|getrandbits)$"),
    "torch": re.compile(r"^torch\.(rand|randn|randint|randperm|rand_like|randn_like|randint_like|normal"
                        r"|bernoulli|multinomial|poisson)$"),
}
_SEEDS = {
    "numpy": re.compile(r"^numpy\.random\.seed$"),
    "python": re.compile(r"^random\.seed$"),
    "torch": re.compile(r"^torch\.(random\.)?manual_seed$"),
}
_HINTS = {"numpy": "np.random.seed(...)", "python": "random.seed(...)", "torch": "torch.manual_seed(...)"}
# seed every generator above: lightning's and nbops.kit's seed_everything, transformers' set_seed,
# keras's set_random_seed (TensorFlow's tf.random.set_seed seeds TensorFlow's only)
_SEED_ALL = re.compile(r"(^|\.)(seed_everything|set_seed|set_random_seed)$")
_ALIASES = {"np": "numpy", "numpy": "numpy", "random": "random", "torch": "torch"}
# scikit-learn callables that are random unless given random_state (numpy's global seed fixes them)
_SKLEARN_RANDOM = re.compile(
    r"(^|\.)(train_test_split|RandomForest\w+|ExtraTrees\w+|GradientBoosting\w+|"
    r"HistGradientBoosting\w+|DecisionTree\w+|KMeans|MiniBatchKMeans|MLP\w+|SGD\w+|"
    r"ShuffleSplit|StratifiedShuffleSplit|RandomizedSearchCV|IsolationForest|BaggingClassifier|"
    r"BaggingRegressor|AdaBoost\w+|TSNE|RandomTreesEmbedding|TruncatedSVD|randomized_svd|"
    r"GaussianMixture|BayesianGaussianMixture|SpectralClustering|LatentDirichletAllocation|"
    r"make_(classification|regression|blobs|moons|circles|gaussian_quantiles|hastie_10_2|friedman[123]"
    r"|multilabel_classification|s_curve|swiss_roll|low_rank_matrix|sparse_uncorrelated|biclusters"
    r"|checkerboard|sparse_coded_signal|spd_matrix|sparse_spd_matrix))$"
    r"|^sklearn\.utils\.(shuffle|resample)$"
)
_FOLDS = re.compile(r"(^|\.)(KFold|StratifiedKFold|GroupKFold|RepeatedKFold)$")
_PATH = re.compile(r"^(/(home|Users|root|mnt|media|opt|srv|var|tmp|data|workspace|scratch)/|~[/\\]|[A-Za-z]:\\)")
# a URL route, not a file: Flask's `<int:id>`, or the first argument of a web framework's route
_ROUTE_PARAM = re.compile(r"<(\w+:)?\w+>")
_ROUTE_CALLS = {"route", "get", "post", "put", "delete", "patch", "head", "options", "api_route",
                "websocket", "add_url_rule", "add_api_route", "add_route", "path", "re_path"}
# a cell none of whose (lowercased: re.I cost 4x) text matches this cannot trigger NB003-NB005
_TRIGGERS = re.compile(
    r"rand|seed|rng|forest|tree|boost|kmeans|mlp|sgd|split|searchcv|kfold|bagging|tsne|torch|import"
    r"|make_|pca|svd|mixture|spectral|dirichlet|shuffle"
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
    line: int | None = None  # within the cell, 1-based

    def __str__(self) -> str:
        where = f"{self.path}:cell {self.cell}" if self.cell else self.path
        if self.cell and self.line:
            where += f":line {self.line}"
        return f"{where}: {self.code} {self.message}"


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


def _track_import(node: ast.Import | ast.ImportFrom, aliases: dict[str, str]) -> None:
    if isinstance(node, ast.Import):
        for a in node.names:
            aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
    elif node.module and not node.level:
        aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names if a.name != "*"})


def _qualified(name: str, aliases: dict[str, str]) -> str:
    head, dot, rest = name.partition(".")
    return f"{aliases[head]}{dot}{rest}" if head in aliases else name


def _randomness(call: ast.Call, shown: str, name: str, seeded: set[str]) -> str | None:
    """NB003's message for CALL (SHOWN as written, NAME qualified), updating SEEDED."""
    if _SEED_ALL.search(name) and not name.startswith("tensorflow."):
        seeded.update(_SEEDS)
        return None
    for generator, pattern in _SEEDS.items():
        if pattern.match(name):
            seeded.add(generator)
            return None
    if name.endswith(("default_rng", "RandomState")):
        seed = call.args[0] if call.args else _kw(call, "seed")
        return f"{shown}() without a seed" if _none(seed) else None
    for generator, pattern in _DRAWS.items():
        if pattern.match(name):
            return None if generator in seeded else f"{shown}() before any {_HINTS[generator]}"
    if "numpy" in seeded or not _none(_kw(call, "random_state")):
        return None
    if _SKLEARN_RANDOM.search(name):
        return f"{shown}(...) without random_state"
    solver = _kw(call, "svd_solver")
    if re.search(r"(^|\.)PCA$", name) and isinstance(solver, ast.Constant) and solver.value == "randomized":
        return f"{shown}(svd_solver='randomized') without random_state"
    shuffle = _kw(call, "shuffle")
    if _FOLDS.search(name) and isinstance(shuffle, ast.Constant) and shuffle.value is True:
        return f"{shown}(shuffle=True) without random_state"
    return None


def _routes(calls: list[ast.Call]) -> set[int]:
    """ids of the strings given as a web framework's route (`@app.route("/data/<id>")`)."""
    out = set()
    for call in calls:
        attr = call.func.attr if isinstance(call.func, ast.Attribute) else _dotted(call.func)
        if attr in _ROUTE_CALLS and call.args and _text(call.args[0]) is not None:
            out.add(id(call.args[0]))
    return out


def code_findings(cells: list[tuple[int, str]]) -> list[tuple[int, str, str, int | None]]:
    """(cell, code, message, line in the cell) for NB003/NB004/NB005 over the code cells, in order."""
    out: list[tuple[int, str, str, int | None]] = []
    seeded: set[str] = set()
    aliases = dict(_ALIASES)
    for number, source in cells:
        if not _TRIGGERS.search(source.lower()):
            continue
        out += env_magic_findings(number, source)
        try:
            tree = ast.parse(code_text(source))
        except SyntaxError:
            continue  # ruff reports syntax errors
        nodes = list(ast.walk(tree))
        calls = [n for n in nodes if isinstance(n, ast.Call)]
        ordered = sorted((n for n in nodes if isinstance(n, (ast.Call, ast.Import, ast.ImportFrom))),
                         key=lambda n: (n.lineno, n.col_offset))
        for step in ordered:
            if isinstance(step, (ast.Import, ast.ImportFrom)):
                _track_import(step, aliases)
            elif message := _randomness(step, _dotted(step.func), _qualified(_dotted(step.func), aliases), seeded):
                out.append((number, "NB003", message, step.lineno))
        routes = _routes(calls)
        for node in nodes:
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and _PATH.match(node.value)
                    and id(node) not in routes and not _ROUTE_PARAM.search(node.value)):
                out.append((number, "NB004", f"path {node.value[:60]!r} only exists on one machine; "
                                             "use a path relative to the project", node.lineno))
        out += secret_findings(number, nodes)
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
    stored = [(n, what) for n, what in strippable(nb) if not _silenced(Finding(path, n, "NB001", ""), ignores)]
    if stored:
        findings.append(Finding(path, None, "NB001", _outputs_message(stored)))
    if needs_parameters and not has_params:
        findings.append(Finding(path, None, "NB002",
                                "no cell tagged 'parameters' (tag the cell of defaults in JupyterLab)"))
    findings += [Finding(path, n, code, msg, line) for n, code, msg, line in code_findings(code_cells)]
    return [f for f in findings if not _silenced(f, ignores)]


def _outputs_message(stored: list[tuple[int | None, str]]) -> str:
    """NB001's one line for a notebook: how many cells (the first few named), and what its own
    metadata holds (strippable()'s items, cell None for the notebook's)."""
    cells = [n for n, _ in stored if n]
    parts = []
    if len(cells) == 1:
        parts.append(f"cell {cells[0]} ({next(what for n, what in stored if n)})")
    elif cells:
        parts.append(f"{len(cells)} cells ({', '.join(map(str, cells[:8]))}{', …' if len(cells) > 8 else ''})")
    parts += [f"the notebook ({what})" for n, what in stored if not n]
    return ("committed outputs, execution counts or editor state in " + " and ".join(parts)
            + "; nbops check --fix strips them, as the git filter does")


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


def ruff_findings(process: subprocess.Popen | None, shown: dict[Path, str],
                  magics: dict[Path, tuple[set[str], set[str]]] | None = None) -> list[Finding]:
    """ruff's findings, each at its cell and line; those about a name a statement magic assigns
    or uses (review/check_magics.py) dropped."""
    if process is None:
        return []
    stdout, stderr = process.communicate()
    try:
        items = json.loads(stdout or "[]")
    except ValueError:
        raise ReviewError(f"ruff failed: {stderr.strip()[:300]}") from None
    out = []
    for item in items:
        full = Path(item["filename"]).resolve()
        code = item.get("code") or "ruff"
        if magics and full in magics and false_positive(code, item["message"], magics[full]):
            continue
        line = (item.get("location") or {}).get("row")
        out.append(Finding(shown.get(full, item["filename"]), item.get("cell"), code, item["message"], line))
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


def uses_nbops_layout(root: Path, folders: tuple[str, ...]) -> bool:
    """A [tool.nbops] table in pyproject.toml, or all of nbops's folders (notebooks/, templates/):
    only there is a notebook without a parameters cell a finding (NB002)."""
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    if re.search(r"^\s*\[\s*tool\s*\.\s*nbops\s*[\].]", text, re.M):
        return True
    return bool(folders) and all((root / d).is_dir() for d in folders)


def run_check(root: Path, args: list[str], needs_parameters_dirs: tuple[str, ...], fix: bool = False,
              lint: bool = True) -> list[Finding]:
    paths = find_notebooks(root, args)
    if not uses_nbops_layout(root, needs_parameters_dirs):
        needs_parameters_dirs = ()
    findings: list[Finding] = []
    shown: dict[Path, str] = {}
    magics: dict[Path, tuple[set[str], set[str]]] = {}
    # ruff reads the files as they are now; --fix only strips outputs, which ruff ignores
    ruff = start_ruff(paths, root) if lint else None
    stripped_by_git = set() if fix else filtered(root, paths)  # their outputs never reach a commit
    for path in paths:
        full = path.resolve()  # once: resolving costs a system call per path component
        rel = os.path.relpath(full, root) if full.is_relative_to(root) else str(path)
        shown[full] = rel
        needs = any(Path(rel).parts[:1] == (d,) for d in needs_parameters_dirs)
        try:
            nb = read_json(path)
            problem = malformed(nb)
            found = [] if problem else check_notebook(nb, rel, needs)
            if not problem:
                magics[full] = magic_names([cell_source(c) for c in nb["cells"] if c.get("cell_type") == "code"])
            if path in stripped_by_git:
                found = [f for f in found if f.code != "NB001"]
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
            strip_file(full)
            found = [f for f in found if f.code != "NB001"]
        findings += found
    unreadable = {f.path for f in findings if f.code == "NB000"}  # one line each: not ruff's too
    findings += [f for f in ruff_findings(ruff, shown, magics) if f.path not in unreadable]
    return sorted(findings, key=lambda f: (f.path, f.cell or 0, f.line or 0, f.code))


def as_json(findings: list[Finding]) -> str:
    return json.dumps([asdict(f) for f in findings], indent=1)
