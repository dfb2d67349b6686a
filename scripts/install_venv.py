"""Install packages into the project's virtual environment with uv, configured as pip is here.

Used by the Makefile (`make demo`, `make install`); standard library only, run with the system
Python. Usage: python3 scripts/install_venv.py VENV REQUIREMENT...   (NBOPS_INSTALL_WITH_PIP=1: pip only)

Why uv: a first `make demo` spent ~25 s of its minute in pip (resolving and downloading one
package at a time, then unpacking 1.6 GB, most of it PyTorch); uv downloads in parallel and links
packages from its cache, so a second fresh clone installs in a few seconds (bench/bench_demo.py).

uv does not read pip's configuration, and this machine's pip has its own (local wheel mirrors,
a find-links folder holding the CPU build of PyTorch, a constraints file). That is translated
here, in one place, from `pip config list`, pip's documented view of its merged configuration.
A setting this script does not know how to translate, or any failure of uv (not installable, a
resolution error), falls back to plain pip with one line saying why: slower, never wrong.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

# pip setting -> uv option, one per whitespace-separated value
LISTS = {"extra-index-url": "--extra-index-url", "find-links": "--find-links",
         "constraint": "--constraint", "trusted-host": "--allow-insecure-host"}
SINGLE = {"index-url": "--index-url"}
FLAGS = {"no-index": "--no-index", "pre": "--prerelease=allow"}
ENV = {"cert": ["SSL_CERT_FILE"], "timeout": ["UV_HTTP_TIMEOUT"], "default-timeout": ["UV_HTTP_TIMEOUT"],
       "proxy": ["HTTPS_PROXY", "HTTP_PROXY"]}  # pip's proxy serves both schemes
# pip's own reading of a yes/no setting (its strtobool)
TRUE, FALSE = {"y", "yes", "t", "true", "on", "1"}, {"n", "no", "f", "false", "off", "0"}
# settings that change nothing about what gets installed from where
HARMLESS = {"disable-pip-version-check", "no-color", "progress-bar", "quiet", "verbose",
            "root-user-action", "cache-dir", "no-cache-dir", "no-input", "retries", "log",
            "no-python-version-warning", "break-system-packages", "require-virtualenv",
            "no-warn-script-location", "no-compile", "compile", "config-file"}
# the sections pip reads for `pip install`, lowest precedence first
SECTIONS = ("global", "install", ":env:")


def pip_settings(listing: str) -> dict[str, str]:
    """`pip config list` output (lines `section.key='value'`) as one dict, the settings of
    `pip install` with pip's precedence (environment over [install] over [global])."""
    found: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        key, sep, value = line.partition("=")
        section, dot, name = key.rpartition(".")
        if not sep or not dot or section not in SECTIONS:
            continue
        try:
            found.setdefault(section, {})[name] = str(ast.literal_eval(value))
        except (ValueError, SyntaxError):
            found.setdefault(section, {})[name] = value.strip("'\"")
    merged: dict[str, str] = {}
    for section in SECTIONS:
        merged.update(found.get(section, {}))
    return merged


def _truthy(name: str, value: str) -> bool:
    word = value.strip().lower()
    if word not in TRUE | FALSE:
        raise ValueError(f"pip setting {name}={value!r} is neither yes nor no")
    return word in TRUE


def uv_options(settings: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """uv's command-line options and environment for pip's SETTINGS; ValueError names a
    setting uv would not honour the same way."""
    # pip's rule: the best version on any index; and no uv.toml or [tool.uv] of the project or
    # the user, which pip would not read (UV_* variables a user sets still apply)
    args = ["--no-config", "--index-strategy", "unsafe-best-match"]
    env: dict[str, str] = {}
    for name, value in settings.items():
        if name in LISTS:
            for item in value.split():
                args += [LISTS[name], item]
        elif name in SINGLE:
            args += [SINGLE[name], value]
        elif name in FLAGS:
            args += [FLAGS[name]] if _truthy(name, value) else []
        elif name in ENV:
            env.update(dict.fromkeys(ENV[name], value))
        elif name not in HARMLESS:
            raise ValueError(f"pip setting {name}={value!r} has no uv translation here")
    return args, env


def run(cmd: list[str], env: dict[str, str] | None = None, quiet: bool = False) -> bool:
    """Run CMD, its output as it comes, less uv's line per installed package and pip's warnings
    about mirrors that lack a package; QUIET: its output only if it fails."""
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    kept = []
    for line in proc.stdout:
        if line.startswith(" + ") or "is ignored: it is neither a file nor a directory" in line:
            continue
        if quiet:
            kept.append(line)
        else:
            print(line, end="", flush=True)
    if proc.wait() != 0 and quiet:
        print("".join(kept[-30:]), end="", flush=True)
    return proc.returncode == 0


def with_uv(venv: Path, requirements: list[str]) -> bool:
    python = venv / "bin" / "python"
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    if listing.returncode != 0:
        print(f"install_venv: `pip config list` failed ({listing.stderr.strip()[:200]}); using pip")
        return False
    try:
        args, env = uv_options(pip_settings(listing.stdout))
    except ValueError as exc:
        print(f"install_venv: {exc}; using pip")
        return False
    uv = venv / "bin" / "uv"
    if not uv.exists() and not run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                                    "--no-compile", "uv"], quiet=True):
        print("install_venv: could not install uv; using pip")
        return False
    # pip too: users' own installs go through pip afterwards
    if run([str(uv), "pip", "install", "--python", str(python), *args, "pip", *requirements], env):
        return True
    print("install_venv: uv failed (above); using pip")
    return False


def ensure_pip(venv: Path) -> bool:
    """pip in VENV (made without it, or left without it by a failed uv)."""
    python = str(venv / "bin" / "python")
    return (venv / "bin" / "pip").exists() or run([python, "-m", "ensurepip", "--upgrade"], quiet=True)


def with_pip(venv: Path, requirements: list[str]) -> bool:
    python = str(venv / "bin" / "python")
    if not ensure_pip(venv):
        return False
    return (run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
            and run([python, "-m", "pip", "install", "--no-compile", *requirements]))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: install_venv.py VENV REQUIREMENT...", file=sys.stderr)
        return 2
    venv, requirements = Path(argv[0]), argv[1:]
    if not (venv / "bin" / "python").exists():
        # no pip of its own yet: uv installs it with the rest (ensurepip alone takes ~3 s)
        if not run([sys.executable, "-m", "venv", "--without-pip", str(venv)]):
            return 1
    if not os.environ.get("NBOPS_INSTALL_WITH_PIP") and with_uv(venv, requirements):
        return 0
    return 0 if with_pip(venv, requirements) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
