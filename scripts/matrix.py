"""The version matrix tier of `make test`: the store tests on the oldest and the newest versions
of MLflow, papermill, nbclient and uvicorn that nbops supports, each set in its own venv.

Usage: python3 scripts/matrix.py [--install-only] [oldest|newest|latest ...]   (default: oldest newest)

- `oldest` / `newest`: the pins below, the bounds pyproject.toml declares (tested by `make test`).
- `latest`: whatever the index has now, pyproject's upper bounds overridden (uv's --override),
  for the weekly workflow (.github/workflows/newest-deps.yml) to say when a new release breaks
  nbops before its bounds are raised.

Each venv is `.venv-mlflow-<version>/` (`.venv-mlflow-latest/`), made once with
scripts/install_venv.py (uv, configured as pip is here) and reused while its stamp matches the
pins and pyproject.toml; the tests in tests/matrix.txt then run in it with its own interpreter.
`--install-only` makes the venvs and stops (`make test` makes them while the rest is set up).
Standard library only, run with the system Python.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# keep in step with pyproject.toml's bounds (tests/unit/test_matrix.py checks they agree)
SETS = {
    "oldest": ["mlflow==3.17.0", "papermill==2.6.0", "nbclient==0.10.0", "uvicorn==0.29.0"],
    # MLflow 3.18.0 is on this machine's index without its mlflow-tracing 3.18.0: not installable
    "newest": ["mlflow==3.17.2", "papermill==2.7.0", "nbclient==0.11.0", "uvicorn==0.55.0"],
    "latest": ["mlflow", "papermill", "nbclient", "uvicorn"],
}
# pytest bounded as in pyproject's dev extra (<9.2: pytest-xdist's groups, see there)
TOOLS = ["pytest>=8,<9.2", "pytest-timeout>=2.3", "pytest-xdist>=3.5", "httpx>=0.27"]
STAMP = ".matrix-stamp"


def venv_for(name: str) -> Path:
    pins = SETS[name]
    version = pins[0].partition("==")[2] or name
    return ROOT / f".venv-mlflow-{version}"


def stamp_text(name: str) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return f"{' '.join(SETS[name] + TOOLS)} pyproject:{digest}\n"


def ensure(name: str) -> Path | None:
    """The venv of set NAME, made or brought up to date; None when it cannot be installed."""
    venv = venv_for(name)
    stamp = venv / STAMP
    if name != "latest" and stamp.exists() and stamp.read_text() == stamp_text(name):
        print(f"matrix: {venv.name} is up to date ({stamp_text(name).strip()})", flush=True)
        return venv
    env = dict(os.environ)
    overrides = None
    if name == "latest":  # pyproject's upper bounds lifted for these four, nothing else
        overrides = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
        overrides.write("\n".join(SETS[name]) + "\n")
        overrides.close()
        env["UV_OVERRIDE"] = overrides.name
        env["NBOPS_INSTALL_WITH_PIP"] = ""  # pip has no overrides: uv or nothing
    stamp.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "scripts" / "install_venv.py"), str(venv),
           *SETS[name], "-e", str(ROOT), *TOOLS]
    done = subprocess.run(cmd, cwd=ROOT, env=env)
    if overrides is not None:
        os.unlink(overrides.name)
    if done.returncode != 0:
        print(f"matrix: could not install the {name} set into {venv.name}", flush=True)
        return None
    stamp.write_text(stamp_text(name))
    return venv


def versions(venv: Path) -> str:
    code = ("import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
            "('mlflow', 'papermill', 'nbclient', 'uvicorn')))")
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                          text=True).stdout.strip()


def tests() -> list[str]:
    lines = (ROOT / "tests" / "matrix.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def main(argv: list[str]) -> int:
    install_only = "--install-only" in argv
    names = [a for a in argv if a != "--install-only"] or ["oldest", "newest"]
    unknown = [n for n in names if n not in SETS]
    if unknown:
        print(f"usage: matrix.py [--install-only] [{'|'.join(SETS)} ...]; unknown: {unknown}", file=sys.stderr)
        return 2
    failed, running = [], []
    for name in names:  # the venvs one after the other (installers share uv's cache)
        started = time.monotonic()
        venv = ensure(name)
        if venv is None:
            failed.append(name)
            continue
        running.append((name, venv, time.monotonic() - started))
    if install_only:
        return 1 if failed else 0
    # then the sets' tests side by side, the cores shared out between them (`make test`'s two sets
    # a core each; a set run alone takes pytest-xdist workers, not one serial pytest on one core),
    # each one's output printed whole when it ends
    workers = max(1, (os.cpu_count() or 1) // max(1, len(running)))
    spread = ["-n", str(workers), "--dist", "loadgroup"] if workers > 1 else []
    procs = []
    for name, venv, installed in running:
        log = tempfile.TemporaryFile("w+")
        print(f"== matrix [{name}] {versions(venv)}", file=log, flush=True)
        # the tests' own project and pytest settings; no coverage here (the main run's)
        proc = subprocess.Popen([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 "--durations=8", *spread, *tests()], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        procs.append((name, installed, time.monotonic(), proc, log))
    ended: dict[str, float] = {}
    while len(ended) < len(procs):  # each set's own time, whichever ends first
        for name, _, _, proc, _ in procs:
            if name not in ended and proc.poll() is not None:
                ended[name] = time.monotonic()
        time.sleep(0.5)
    for name, installed, started, proc, log in procs:
        log.seek(0)
        sys.stdout.write(log.read())
        log.close()
        code = proc.returncode
        print(f"== matrix [{name}]: {'passed' if code == 0 else 'FAILED'} "
              f"(venv {installed:.0f} s, tests {ended[name] - started:.0f} s)", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"matrix: failed on {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
