"""kernelstate's Jupyter side: the server extension, the kernel's comm target, ``%serve``.

Importing this package is cheap (``%load_ext kernelstate`` goes through it):
the server extension is imported only when Jupyter asks for its extension
points.
"""
from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .extension import KernelstateApp

    return [{"module": "kernelstate.jupyter", "app": KernelstateApp}]


# The name jupyter_server < 2 and older tools look for.
_jupyter_server_extension_paths = _jupyter_server_extension_points


def _load_jupyter_server_extension(serverapp: Any) -> Any:
    from .extension import KernelstateApp

    return KernelstateApp._load_jupyter_server_extension(serverapp)  # type: ignore[no-untyped-call]
