"""`nbops lab`: JupyterLab configured for the project (templates in the launcher, the MLflow UI
behind jupyter-server-proxy, notebook jobs that run through `nbops run`, kernels that log to the
project's store). Top layer beside `cli`; jupyter_server and its extensions are imported only by
the server process, never by `nbops.cli.main`."""
