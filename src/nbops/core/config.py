"""Settings: defaults in code < [tool.nbops] in pyproject.toml < NBOPS_* variables < CLI flags.

`nbops config` prints each value with where it came from.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from nbops.core.errors import ConfigError

DEFAULT_RUNNERS = {"cpu": "ubuntu-latest", "gpu": ["self-hosted", "linux", "x64", "gpu"]}
# [tool.nbops.runners.gitlab]: the GitLab child pipeline's runner tags and images by hardware
# (tags pick a runner; an empty image leaves a job to the runner's own default or shell)
DEFAULT_GITLAB_RUNNERS: dict[str, Any] = {
    "cpu": [],  # tags of CPU jobs; none: any runner that takes untagged jobs
    "gpu": ["gpu"],
    "image": "python:3.11",
    "gpu_image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",  # CUDA, cuDNN and Python 3.11
}
# [tool.nbops.registry]: what promotion to champion requires, and what retrain may do itself
DEFAULT_REGISTRY: dict[str, Any] = {
    "require_approval": False,  # champion only after `nbops models approve` (by one person)
    "champion_gates": [],  # gates beyond the notebook's own, e.g. ["accuracy >= 0.95"]
    "auto_promote": False,  # `nbops retrain` promotes a better challenger itself (if no approval needed)
}
# [tool.nbops.monitor]: when `nbops monitor` calls it drift (exit 1)
DEFAULT_MONITOR: dict[str, Any] = {
    "p_value": 0.01,  # a feature drifts when its test's p-value is below this ...
    "psi": 0.2,  # ... and its population stability index is at least this
    "max_drifted_features": 0,  # more drifted features than this is drift
    "metric_drop": 0.05,  # with labels: decay when the compare metric falls by more than this
    "bins": 10,  # PSI bins (quantiles of the reference)
    "min_rows": 30,  # fewer rows than this in either table: too few to say anything about drift
    "reproduce_tolerance": 1e-6,  # `nbops reproduce`: largest metric difference that passes
}
_TABLE_DEFAULTS = {"registry": DEFAULT_REGISTRY, "monitor": DEFAULT_MONITOR}
# keys a table takes but only holds when set: `require_approvals = N` (N distinct approvers for
# champion) implies `require_approval`; unset, `require_approval = true` means one approver
_OPTIONAL: dict[str, dict[str, Any]] = {"registry": {"require_approvals": 1}}


@dataclass(frozen=True)
class Settings:
    root: Path = Path(".")
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_root: str = "mlruns"
    runs_dir: str = "runs"
    templates_dir: str = "templates"
    notebooks_dir: str = "notebooks"
    src_dir: str = "src"  # project modules notebooks import; a change re-runs their notebooks
    experiment: str = ""  # empty: one MLflow experiment per notebook, named after it
    timeout: float = 3600.0  # seconds per notebook, unless its metadata says otherwise
    cell_timeout: float = 0.0  # seconds per cell; 0 means no limit
    start_timeout: float = 60.0  # seconds for a kernel to start
    # seconds nbops (and each kernel) keeps retrying a run's record against a tracking server
    # that went away, before it keeps the run in .nbops/spool for `nbops sync`
    tracking_retry_s: float = 60.0
    kernel_name: str = ""  # empty: the notebook's own kernelspec
    # in CI (CI, GITHUB_ACTIONS or GITLAB_CI set), a missing or empty MLFLOW_TRACKING_URI is an
    # error instead of the embedded store: `nbops init` and the shipped CI set it
    require_tracking_server: bool = False
    # more parameter names whose values are never stored (comma-separated; names and values that
    # look like secrets are masked anyway: core/secrets.py)
    secret_params: str = ""
    # more environment variables every kernel gets from the nbops process (names or fnmatch
    # patterns, comma-separated), beyond MLflow's and the artifact stores' (core/store.py):
    # local kernels inherit the whole environment anyway; Ray workers on other machines do not
    kernel_env: str = ""
    html_hide_input: bool = False  # the HTML of each run's executed notebook shows outputs only
    # CI runner labels (GitHub runs-on) and tags (GitLab) by hardware: [tool.nbops.runners]
    runners: dict[str, Any] = field(default_factory=lambda: {**DEFAULT_RUNNERS, "gitlab": dict(DEFAULT_GITLAB_RUNNERS)})
    registry: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_REGISTRY))
    monitor: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_MONITOR))
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def kernel_env_names(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.kernel_env.split(",") if n.strip())

    @property
    def secret_param_names(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.secret_params.split(",") if n.strip())

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def resolved_tracking_uri(self) -> str:
        """The tracking URI with a relative sqlite path made absolute (kernels run elsewhere)."""
        uri = self.tracking_uri
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
            return prefix + str(self.path(uri[len(prefix):]))
        if "://" not in uri:  # a plain directory: MLflow's file store
            return str(self.path(uri))
        return uri


_TABLES = ("runners", "registry", "monitor")
_KEYS = [f.name for f in fields(Settings) if f.name not in ("root", "sources", *_TABLES)]


def find_root(start: Path) -> Path:
    start = start.resolve()
    for d in (start, *start.parents):
        if (d / "pyproject.toml").is_file() or (d / ".git").exists():
            return d
    return start


def _read_pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef, unused-ignore]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return data.get("tool", {}).get("nbops", {})


# seconds: (smallest allowed, whether the smallest itself is allowed); 0 means "no limit" only
# for cell_timeout
_SECONDS = {"timeout": (0.0, False), "cell_timeout": (0.0, True), "start_timeout": (0.0, False),
            "tracking_retry_s": (0.0, False)}


def _convert(key: str, value: Any, where: str) -> Any:
    kind = type(getattr(Settings(), key))
    if key in ("secret_params", "kernel_env") and isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if kind is bool:  # NBOPS_REQUIRE_TRACKING_SERVER=false is false (bool("false") is not)
        text = str(value).strip().lower()
        if isinstance(value, bool) or text in ("true", "false", "1", "0", "yes", "no"):
            return value if isinstance(value, bool) else text in ("true", "1", "yes")
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    if kind in (int, float) and isinstance(value, bool):  # `timeout = true` is not a number
        raise ConfigError(f"{where}: {key} must be {kind.__name__}, got {value!r}")
    try:
        converted = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: {key} must be {kind.__name__}, got {value!r}") from None
    if key in _SECONDS:
        low, inclusive = _SECONDS[key]
        if not math.isfinite(converted) or converted < low or (converted == low and not inclusive):
            allowed = "a number of seconds >= 0 (0: no limit)" if inclusive else "a positive number of seconds"
            raise ConfigError(f"{where}: {key} must be {allowed}, got {value!r}")
    return converted


def _table(name: str, value: Any) -> dict[str, Any]:
    """[tool.nbops.registry] or [tool.nbops.monitor]: known keys, each of its default's type."""
    known = {**_TABLE_DEFAULTS[name], **_OPTIONAL.get(name, {})}
    if not isinstance(value, dict):
        raise ConfigError(f"[tool.nbops.{name}] must be a table")
    out = dict(_TABLE_DEFAULTS[name])
    for key, item in value.items():
        if key not in known:
            raise ConfigError(f"[tool.nbops.{name}]: unknown key '{key}'",
                              hint=f"known keys: {', '.join(known)}")
        kind = type(known[key])
        ok = (isinstance(item, kind) and not (kind is int and isinstance(item, bool))) or (
            kind is float and isinstance(item, int) and not isinstance(item, bool))
        if kind is list:
            ok = isinstance(item, list) and all(isinstance(x, str) for x in item)
        if not ok:
            raise ConfigError(f"[tool.nbops.{name}]: {key} must be {kind.__name__}, got {item!r}")
        out[key] = float(item) if kind is float else item
    ranges = {"p_value": (0.0, 1.0), "psi": (0.0, None), "max_drifted_features": (0, None),
              "metric_drop": (0.0, None), "bins": (2, None), "reproduce_tolerance": (0.0, None),
              "min_rows": (1, None)}
    if name == "monitor":
        for key, (low, high) in ranges.items():
            value = out[key]
            if value < low or (high is not None and value > high) or (key == "p_value" and value == 0):
                allowed = f"in (0, {high:g}]" if key == "p_value" else f"at least {low:g}"
                raise ConfigError(f"[tool.nbops.monitor]: {key} must be {allowed}, got {value!r}")
    if name == "registry":
        from nbops.core.errors import NotebookError
        from nbops.core.gates import parse_gate

        for text in out["champion_gates"]:
            try:
                parse_gate(text, "")
            except NotebookError:
                raise ConfigError(f"[tool.nbops.registry] champion_gates: bad gate {text!r}",
                                  hint="write gates as 'METRIC OP NUMBER', e.g. 'accuracy >= 0.9'") from None
        if "require_approvals" in out:
            count = out["require_approvals"]
            if count < 1:
                raise ConfigError(f"[tool.nbops.registry]: require_approvals must be at least 1, got {count!r}",
                                  hint="leave it out (or require_approval = false) for no approval")
            if value.get("require_approval") is False:
                raise ConfigError("[tool.nbops.registry]: require_approval = false contradicts "
                                  f"require_approvals = {count}", hint="keep one of them")
            out["require_approval"] = True  # `retrain`'s auto_promote reads this one
    return out


def _labels(where: str, key: str, value: Any) -> None:
    if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
        raise ConfigError(f"[{where}]: '{key}' must be a label or a list of labels, got {value!r}")


def _runners(value: dict[str, Any]) -> dict[str, Any]:
    """[tool.nbops.runners]: GitHub labels by hardware, and its `gitlab` table (tags, images)."""
    gitlab = value.get("gitlab", {})
    for key, item in value.items():
        if key != "gitlab":
            _labels("tool.nbops.runners", key, item)
    if not isinstance(gitlab, dict):
        raise ConfigError("[tool.nbops.runners.gitlab] must be a table",
                          hint='e.g. [tool.nbops.runners.gitlab] with gpu = ["gpu"]')
    for key, item in gitlab.items():
        if key not in DEFAULT_GITLAB_RUNNERS:
            raise ConfigError(f"[tool.nbops.runners.gitlab]: unknown key '{key}'",
                              hint=f"known keys: {', '.join(DEFAULT_GITLAB_RUNNERS)}")
        if key.endswith("image") and not isinstance(item, str):
            raise ConfigError(f"[tool.nbops.runners.gitlab]: {key} must be an image name "
                              f"('' for the runner's default), got {item!r}")
        if not key.endswith("image"):
            _labels("tool.nbops.runners.gitlab", key, item)
    return {**DEFAULT_RUNNERS, **value, "gitlab": {**DEFAULT_GITLAB_RUNNERS, **gitlab}}


def load_settings(cwd: Path | None = None, flags: dict[str, Any] | None = None) -> Settings:
    root = find_root(Path(cwd or os.getcwd()))
    values: dict[str, Any] = {}
    sources = {k: "default" for k in [*_KEYS, *_TABLES]}
    for key, value in _read_pyproject(root).items():
        if key == "runners" and isinstance(value, dict):
            values["runners"], sources["runners"] = _runners(value), "pyproject.toml"
            continue
        if key in _TABLE_DEFAULTS:
            values[key], sources[key] = _table(key, value), "pyproject.toml"
            continue
        if key not in _KEYS or isinstance(value, dict):
            raise ConfigError(
                f"{root / 'pyproject.toml'}: unknown key '{key}' in [tool.nbops]",
                hint=f"known keys: {', '.join(_KEYS)}",
            )
        values[key], sources[key] = _convert(key, value, "[tool.nbops]"), "pyproject.toml"
    if os.environ.get("MLFLOW_TRACKING_URI", "").strip():  # empty (or blank) means unset
        values["tracking_uri"] = os.environ["MLFLOW_TRACKING_URI"].strip()
        sources["tracking_uri"] = "MLFLOW_TRACKING_URI"
    for key in _KEYS:
        env = f"NBOPS_{key.upper()}"
        if os.environ.get(env):
            values[key], sources[key] = _convert(key, os.environ[env], env), env
    for key, value in (flags or {}).items():
        if value is not None:
            values[key], sources[key] = _convert(key, value, f"--{key.replace('_', '-')}"), "flag"
    return replace(Settings(root=root), **values, sources=sources)


CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI")


def in_ci(environ: Mapping[str, str] | None = None) -> str:
    """The variable that says this is a CI job (CI, GITHUB_ACTIONS, GITLAB_CI), or ''."""
    env = os.environ if environ is None else environ
    return next((v for v in CI_VARIABLES if env.get(v, "").strip().lower() not in ("", "0", "false")), "")


def check_tracking_server(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """Before a command opens the store: in CI with `require_tracking_server`, no tracking server
    (MLFLOW_TRACKING_URI missing or empty, nothing else set) is a one-line ConfigError naming the
    secret, never a silent sqlite file on the runner. Elsewhere returns a note when an empty
    MLFLOW_TRACKING_URI fell back to the embedded store ('' when there is nothing to say)."""
    env = os.environ if environ is None else environ
    if settings.sources.get("tracking_uri", "default") != "default":
        return ""
    empty = "MLFLOW_TRACKING_URI" in env  # set, but blank: load_settings took it as unset
    ci = in_ci(env)
    if ci and settings.require_tracking_server:
        state = "is empty" if empty else "is not set"
        raise ConfigError(f"MLFLOW_TRACKING_URI {state} in CI ({ci} is set) and this project has "
                          "require_tracking_server = true: no run would reach your tracking server",
                          hint="add the repository secret (GitHub) or CI/CD variable (GitLab) "
                          "MLFLOW_TRACKING_URI with your server's URL")
    if empty:
        return f"note: MLFLOW_TRACKING_URI is empty: using the embedded store {settings.tracking_uri}"
    return ""


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    rows = [("root", str(settings.root), "nearest pyproject.toml or .git")]
    for key in [*_KEYS, *_TABLES]:
        rows.append((key, str(getattr(settings, key)), settings.sources.get(key, "default")))
    return rows
