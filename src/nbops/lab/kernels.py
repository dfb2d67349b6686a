"""The lab's kernel manager: Python kernels get the project's store and `nbops._kernel`."""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Dict


class LabKernelManager(AsyncMappingKernelManager):
    """Jupyter's kernel manager, with nbops's environment and start-up import for Python kernels
    (the same `exec_lines` nbops run uses; restarts keep both)."""

    nbops_env = Dict(config=True, help="environment variables for every Python kernel")

    async def start_kernel(self, **kwargs: Any) -> str:  # type: ignore[override]
        kernel_id = kwargs.get("kernel_id")
        name = kwargs.get("kernel_name") or self.default_kernel_name
        specs = self.kernel_spec_manager
        try:
            language = specs.get_kernel_spec(name).language if specs is not None else ""
        except Exception:  # noqa: BLE001 - an unknown kernel fails in Jupyter's own words below
            language = ""
        if (kernel_id is None or kernel_id not in self) and language.lower() == "python":
            env = dict(kwargs.get("env") or os.environ)
            env.update(self.nbops_env)
            # the kernel asks the lab for its notebook's current path (renamed after it started)
            server = self.parent
            if server is not None and getattr(server, "connection_url", None):
                env["NBOPS_LAB_URL"] = server.connection_url
                env["NBOPS_LAB_TOKEN"] = server.identity_provider.token or ""
            kwargs["env"] = env
            kwargs["extra_arguments"] = [*kwargs.get("extra_arguments", []),
                                         "--IPKernelApp.exec_lines=import nbops._kernel"]
        return await super().start_kernel(**kwargs)
