"""nbops: parameterised notebooks executed with papermill and tracked in MLflow.

`import nbops` stays cheap (it runs inside every kernel): only the recorder is imported here;
everything else loads when a command needs it.
"""

from nbops.record import record

__version__ = "0.1.0"
__all__ = ["record", "__version__"]
