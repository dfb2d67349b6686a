"""nbops: parameterised notebooks executed with papermill and tracked in MLflow.

`import nbops` stays cheap (it runs inside every kernel): only the recorder is imported here,
and the finder that defers a dependency's slow import (`_deferred_rfc3987`, standard library);
everything else loads when a command needs it. Inside a Jupyter kernel it also loads `_kernel`
(standard library only), which finds the project when the notebook imports mlflow.
"""

import sys as _sys

from nbops import _deferred_rfc3987
from nbops.record import record

_deferred_rfc3987.install()  # a dependency's 1.4 s import, deferred to its first use (see there)

if "ipykernel.kernelapp" in _sys.modules:  # in a kernel anywhere: log to the project's store
    from nbops import _kernel  # noqa: F401 - installs its mlflow import hook (nothing read yet)

__version__ = "0.1.0"
__all__ = ["record", "__version__"]
