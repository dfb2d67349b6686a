"""nbops/_deferred_rfc3987.py: a process that imports nbops, then nbformat (each `nbops run`, the
git clean filter) no longer builds rfc3987-syntax's Earley parser (1.4 s) at import, and a schema
that checks an IRI still gets rfc3987-syntax's answers. Fresh interpreters: this one has imported
jsonschema already."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("rfc3987_syntax", reason="only where jsonschema's IRI checks come from rfc3987-syntax")

VALUES = ["http://example.com/ü/päth?q=1#frag", "urn:isbn:0451450523", "not an iri", "http://[::1", "a/b", ""]

CHECKS = """
import json, sys
from jsonschema import FormatChecker
checker = FormatChecker()
answers = [[checker.conforms(v, f) for f in ("iri", "iri-reference")] for v in json.loads(sys.argv[1])]
print(json.dumps(answers))
"""


def _python(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_nbformat_after_nbops_builds_no_parser_until_an_iri_is_checked():
    loaded = _python("import sys, nbops, nbformat, papermill\n"
                     "print('lark' in sys.modules, 'rfc3987_syntax.syntax_helpers' in sys.modules)")
    assert loaded == "False False"
    # the same answers as rfc3987-syntax imported as jsonschema imports it without nbops
    theirs = _python(CHECKS, json.dumps(VALUES))
    ours = _python("import nbops\n" + CHECKS, json.dumps(VALUES))
    assert ours == theirs
    assert json.loads(ours)[0] == [True, True] and json.loads(ours)[2] == [False, False]
    # the package's other names come from the real module, on first use
    assert _python("import nbops, rfc3987_syntax\nprint(rfc3987_syntax.parse('iri', 'http://x.y/z').data)") == "iri"


def test_the_clean_filter_strips_without_the_parser():
    notebook = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    code = ("import sys\nfrom nbops.notebook.strip import strip_text\n"
            f"strip_text({notebook!r})\nprint('lark' in sys.modules)")
    assert _python(code) == "False"
