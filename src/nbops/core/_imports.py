"""One workaround for a slow import, in one place.

jsonschema (imported by nbformat, so by papermill and nbdime) imports `rfc3987_syntax` when it
is installed, and that module builds a parser at import: about 1 s of every nbops command that
touches a notebook (measured here: `import nbdime` 1.18 s -> 0.22 s, `import papermill`
1.64 s -> 0.65 s without it). jsonschema treats the module as optional (it only checks the
"iri" formats, which the notebook schema never uses), so nbops's own process hides it.
Kernels are separate processes and are not affected.
"""

from __future__ import annotations

import sys


def skip_slow_optional_imports() -> None:
    if "jsonschema" not in sys.modules:  # too late once jsonschema has loaded
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # None: `import` raises ImportError
