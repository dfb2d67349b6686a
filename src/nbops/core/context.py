"""Facts about where a run happens: git state and hardware. Plain subprocess calls, no imports."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class GitInfo:
    sha: str
    branch: str
    dirty: bool


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(root: Path) -> GitInfo:
    sha = _git(root, "rev-parse", "HEAD") or "unknown"
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD") or "unknown"
    if branch == "HEAD":  # detached, as in CI checkouts: CI names the branch itself
        branch = os.environ.get("GITHUB_REF_NAME") or os.environ.get("CI_COMMIT_REF_NAME") or "HEAD"
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return GitInfo(sha=sha, branch=branch, dirty=bool(status) if status is not None else False)


def path_dirty(root: Path, path: Path) -> bool:
    """Whether PATH differs from HEAD, or was never committed (untracked files do not make the
    whole tree dirty, but a run of a never-committed notebook cannot be reproduced from its sha)."""
    status = _git(root, "status", "--porcelain", "--untracked-files=all", "--", str(path))
    return bool(status)


def relative_to_repo(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()


@lru_cache(maxsize=1)
def _gpu_names() -> tuple[str, ...]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return ()
    try:
        done = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if done.returncode != 0:
        return ()
    return tuple(n.strip() for n in done.stdout.splitlines() if n.strip())


def gpu_count() -> int:
    return len(_gpu_names())


def device_name() -> str:
    """The first GPU's name from nvidia-smi, or 'cpu'. Never imports torch (seconds)."""
    names = _gpu_names()
    return names[0] if names else "cpu"


# who started a CI job, by platform: the person behind the push or the pull request
_CI_ACTORS = ("GITHUB_TRIGGERING_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR")


def who_ran(environ: dict[str, str] | None = None) -> str:
    """Who a run (and a model version) is recorded as (MLflow's `mlflow.user`): the user the
    tracking server authenticates (MLFLOW_TRACKING_USERNAME, basic auth: the identity the server
    enforces, so it wins over what the environment merely says), else the CI actor in a CI job,
    else the login name of this process's user (MLflow itself wrote `unknown` for nbops's runs,
    and the OS login under basic auth)."""
    import getpass

    env = os.environ if environ is None else environ
    authenticated = env.get("MLFLOW_TRACKING_USERNAME", "").strip()
    if authenticated:
        return authenticated
    actor = next((env[v] for v in _CI_ACTORS if env.get(v, "").strip()), "")
    if actor:
        return actor.strip()
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER variable and no passwd entry (some containers)
        return "unknown"
