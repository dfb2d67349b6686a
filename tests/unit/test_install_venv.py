"""scripts/install_venv.py: pip's configuration, as the real `pip config list` prints it, becomes
uv's options; a setting with no translation sends the install to pip."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install_venv.py"
spec = importlib.util.spec_from_file_location("install_venv", SCRIPT)
install_venv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_venv)


def pip_config_list(tmp_path: Path, text: str, **env: str) -> str:
    conf = tmp_path / "pip.conf"
    conf.write_text(text)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                          env={**clean, "PIP_CONFIG_FILE": str(conf), **env}, check=True)
    return done.stdout


def test_pip_settings_become_uv_options_with_pips_precedence(tmp_path):
    listing = pip_config_list(
        tmp_path,
        "[global]\nextra-index-url = file:///a/simple https://b.example/simple\nconstraint = /g.txt\n"
        "[install]\nconstraint = /i.txt\npre = true\ncert = /install.pem\n",
        PIP_FIND_LINKS="/w1 /w2", PIP_CERT="/env.pem", PIP_DISABLE_PIP_VERSION_CHECK="1")
    settings = install_venv.pip_settings(listing)
    assert settings["constraint"] == "/i.txt" and settings["cert"] == "/env.pem"  # install > global, env > all
    args, env = install_venv.uv_options(settings)
    pairs = list(zip(args, args[1:], strict=False))
    assert ("--index-strategy", "unsafe-best-match") in pairs  # pip looks at every index
    assert ("--extra-index-url", "file:///a/simple") in pairs
    assert ("--extra-index-url", "https://b.example/simple") in pairs
    assert ("--find-links", "/w1") in pairs and ("--find-links", "/w2") in pairs
    assert ("--constraint", "/i.txt") in pairs and ("--constraint", "/g.txt") not in pairs
    assert "--prerelease=allow" in args
    assert "--no-config" in args  # no uv.toml / [tool.uv], which pip would not read
    assert env["SSL_CERT_FILE"] == "/env.pem"


def test_yes_no_settings_read_as_pip_reads_them_and_a_proxy_serves_both_schemes():
    args, env = install_venv.uv_options({"no-index": "t", "pre": "off", "proxy": "http://proxy:3128"})
    assert "--no-index" in args and "--prerelease=allow" not in args
    assert env == {"HTTPS_PROXY": "http://proxy:3128", "HTTP_PROXY": "http://proxy:3128"}
    with pytest.raises(ValueError, match="no-index"):
        install_venv.uv_options({"no-index": "maybe"})


def test_a_setting_uv_would_not_honour_is_refused_by_name(tmp_path):
    listing = pip_config_list(tmp_path, "[install]\nonly-binary = :all:\n")
    with pytest.raises(ValueError, match="only-binary"):
        install_venv.uv_options(install_venv.pip_settings(listing))


def test_switches_that_are_off_add_nothing():
    args, env = install_venv.uv_options({"no-index": "false", "disable-pip-version-check": "1"})
    assert args == ["--no-config", "--index-strategy", "unsafe-best-match"] and env == {}


def test_the_pip_fallback_gets_pip_into_a_venv_made_without_it(tmp_path):
    """The venv starts without pip (uv brings it); falling back to pip must put it there first."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    assert not (venv / "bin" / "pip").exists()
    assert install_venv.ensure_pip(venv)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and str(venv) in done.stdout
