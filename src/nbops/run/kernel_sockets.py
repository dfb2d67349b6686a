"""Where a kernel and nbops talk: Unix sockets in a private folder per kernel, not TCP ports.

`run/kernel_procs.py` hands the folder's socket prefix to nbclient's kernel manager (a traitlets
Config), names the folder after its owner and removes it after the run, or, after a `kill -9` of
nbops, once its owner is gone.
"""

from __future__ import annotations

import functools
import os
import tempfile
from typing import Any

FOLDER_PREFIX = "nbops-kernel-"


def kernel_sockets(client_kwargs: dict[str, Any], kernel_name: str | None, name: str = "") -> str | None:
    """Have an ipykernel kernel talk to nbops over Unix sockets in a private folder (returned, to
    be removed after the run), not over TCP ports on localhost.

    jupyter_client picks a kernel's five TCP ports by binding port 0 and closing the socket
    before the kernel binds them; in between, any process (another kernel of the batch, a
    connection's ephemeral source port) can take one, and the kernel then never answers:
    "Kernel didn't respond in 60 seconds" (seen once in a `make bench` of 10-notebook batches at
    --jobs 2; papermill#239, nbconvert#1066). IPC sockets have no such window, and a folder only
    this user can enter keeps other local users off them. TCP stays where Unix sockets don't
    exist, for kernels other than ipykernel (not all of them build IPC addresses right), and
    where the temporary folder's path is too long for a socket's address. NAME: the start of
    the folder's name after `nbops-kernel-`."""
    if os.name != "posix" or not _is_ipykernel(kernel_name):
        return None
    from traitlets.config import Config

    for parent in (None, "/tmp"):  # the user's temporary folder, else the short one
        folder = tempfile.mkdtemp(prefix=FOLDER_PREFIX + name, dir=parent)  # mode 0700
        ip = os.path.join(folder, "k")  # the sockets are k-1 ... k-5
        if len(os.fsencode(ip)) + len("-99999") < _SOCKET_PATH_MAX:
            break
        os.rmdir(folder)
    else:
        return None
    config = Config(client_kwargs.get("config") or {})
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = ip
    client_kwargs["config"] = config
    return folder


_SOCKET_PATH_MAX = 104  # sun_path: 104 bytes on macOS and the BSDs, 108 on Linux


@functools.cache
def _is_ipykernel(kernel_name: str | None) -> bool:
    """Whether KERNEL_NAME's kernelspec starts ipykernel (whose IPC transport nbops relies on)."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        argv = KernelSpecManager().get_kernel_spec(kernel_name or "python3").argv
    except Exception:  # noqa: BLE001 - no such kernelspec: nbclient reports it, over TCP as ever
        return False
    return any("ipykernel" in part for part in argv)
