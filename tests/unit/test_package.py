"""What `import nbops` gives a notebook: the pinned public API, and no heavy library loaded."""

from __future__ import annotations

import subprocess
import sys


def test_import_nbops_stays_light():
    code = ("import sys, nbops; heavy = {'papermill', 'nbformat', 'mlflow', 'scrapbook', 'pandas', "
            "'numpy', 'rich', 'yaml'} & set(sys.modules); print(sorted(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_public_api_is_pinned():
    import nbops

    assert sorted(nbops.__all__) == ["__version__", "record"]
