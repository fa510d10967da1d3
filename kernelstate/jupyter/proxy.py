"""jupyter-server-proxy: the ``kernelstate-proxy`` launcher, and proxied URLs for ``%serve``.

Two ways a kernelstate server is reached through a Jupyter server:

* **The launcher.** jupyter-server-proxy calls :func:`setup_kernelstate` (the
  ``jupyter_serverproxy_servers`` entry point) once, in the Jupyter server
  process. On the first request to ``{base_url}kernelstate-proxy/`` it starts
  ``kernelstate serve`` on the notebooks directory (``$KERNELSTATE_PROXY_DIR``,
  else the Jupyter server's working directory) and proxies to it. The JupyterLab
  launcher shows it as "kernelstate apps".
* **``%serve`` in a kernel.** A server started from a notebook is reached at
  ``{base_url}proxy/{port}/...``; :func:`jupyter_location` finds ``base_url``
  from the kernel's environment so the printed link goes there.

Security of the launcher: its server listens on a Unix socket, not a TCP
port. jupyter-server-proxy creates the socket's folder with ``mkdtemp``
(mode 0700) and kernelstate binds the socket with mode 0600, so no other
local account can connect; nothing secret is on the command line (which
every account can read through ``ps``), and the session-token key is made in
the server process. The browser gets there only through jupyter-server-proxy,
which requires Jupyter's authentication for HTTP and WebSocket alike (403 on
an unauthenticated upgrade since 4.1.1) and checks the WebSocket's Origin
with Jupyter's own policy before proxying it. The launcher then presents
every proxied request to kernelstate as a local, same-origin one
(``request_headers_override`` sets ``Host`` and ``Origin`` to
:data:`UPSTREAM_HOST`), so Jupyter's origin decision is the one that counts
and kernelstate needs no ``--allow-websocket-origin '*'``.

A ``%serve`` server binds 127.0.0.1 under a random 128-bit path prefix
(:func:`secret_prefix`), made in the kernel, never put on a command line; it
allows the Jupyter server's host as the kernel knows it (never learned from
requests; :mod:`kernelstate.jupyter.kernel_server`).

This module is imported by the Jupyter server at startup and by ``%serve``:
standard library only.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROXY_NAME = "kernelstate-proxy"
"""The entry point's name, which jupyter-server-proxy uses as the URL path.

It must differ from ``kernelstate``: ``{base_url}kernelstate/`` belongs to the
kernelstate server extension, and both would claim the same routes.
"""
DIR_ENV = "KERNELSTATE_PROXY_DIR"
URL_ENV = "KERNELSTATE_JUPYTER_URL"
ICON_PATH = Path(__file__).resolve().parent / "icons" / "kernelstate.svg"
START_TIMEOUT_S = 60.0  # first start imports Bokeh; Binder machines are slow
UPSTREAM_HOST = "localhost"
"""The ``Host`` (and ``Origin`` host) of every request the launcher's server sees.

Only the proxy can reach the server's owner-only socket, so this name is the
one it expects; the browser's own Host and Origin were judged by Jupyter.
"""
_STALE_PREFIX = re.compile(r"^/ks-[0-9a-f]{32}(?=/|$)")


def secret_prefix() -> str:
    """A fresh random URL prefix (128 bits), like ``/ks-3f2a...``."""
    return "/ks-" + secrets.token_hex(16)


def setup_kernelstate() -> dict[str, Any]:
    """The jupyter-server-proxy server process for the launcher entry.

    Returns:
        The ``ServerProcess`` settings: ``kernelstate serve DIR`` on a Unix
        socket in a folder of its own (``unix_socket: True``; the proxy
        fills in ``{unix_socket}``).
    """
    directory = os.environ.get(DIR_ENV) or os.getcwd()
    # jupyter-server-proxy runs str.format over every argument: keep braces in the folder's name literal.
    directory = directory.replace("{", "{{").replace("}", "}}")
    return {
        "command": [sys.executable, "-m", "kernelstate.cli", "serve", directory,
                    "--unix-socket", "{unix_socket}", "--allow-websocket-origin", UPSTREAM_HOST],
        "unix_socket": True,
        "timeout": START_TIMEOUT_S,
        "absolute_url": False,
        "rewrite_response": redirect_stale_prefix,
        "request_headers_override": {"Host": UPSTREAM_HOST, "Origin": f"http://{UPSTREAM_HOST}"},
        "new_browser_tab": True,
        "launcher_entry": {
            "enabled": True,
            "title": "kernelstate apps",
            "icon_path": str(ICON_PATH),
            "category": "Notebook",
        },
    }


def without_stale_prefix(path: str) -> str | None:
    """``path`` without a leading ``/ks-<32 hex digits>``; None if it has none.

    Earlier launchers served under such a random prefix (new at every Jupyter
    start); a bookmark of one still finds its app.
    """
    if not path.startswith("/"):
        path = "/" + path
    stripped = _STALE_PREFIX.sub("", path, count=1)
    if stripped == path:
        return None
    return stripped or "/"


def redirect_stale_prefix(response: Any, path: str, request: Any) -> None:
    """A ``rewrite_response`` that redirects a path under an old secret prefix to the path without it.

    The proxy then rewrites the ``Location`` under the public URL
    (``{base_url}kernelstate-proxy/...``).
    """
    target = without_stale_prefix(path)
    if target is None:
        return
    if request.query:
        target += "?" + request.query
    headers = type(response.headers)()
    headers["Location"] = target
    headers["Cache-Control"] = "no-store"
    response.headers = headers
    response.body = b""
    response.code = 302


@dataclass(frozen=True)
class JupyterLocation:
    """Where the notebook's Jupyter server is, as the user's browser sees it.

    Attributes:
        base_url: the server's URL path prefix, starting and ending with ``/``
            (``/user/alice/`` on JupyterHub).
        origin: ``scheme://host[:port]`` when known; empty means "the notebook's
            own origin", and links are then root-relative paths.
        proxied: whether ``%serve`` links should go through jupyter-server-proxy
            (behind a prefix or a hub, a direct ``localhost`` link cannot work).
        source: what this was computed from, for messages.
    """

    base_url: str
    origin: str = ""
    proxied: bool = True
    source: str = ""

    def proxy_url(self, port: int, path: str = "/") -> str:
        """The public URL of ``path`` on a local ``port``, through ``{base_url}proxy/{port}``."""
        return f"{self.origin}{self.base_url}proxy/{port}{path if path.startswith('/') else '/' + path}"


def _base(path: str) -> str:
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def jupyter_location(environ: Mapping[str, str] | None = None,
                     runtime_dir: str | Path | None = None) -> JupyterLocation | None:
    """Find the Jupyter server this kernel belongs to, from the kernel's environment.

    In order: ``$KERNELSTATE_JUPYTER_URL`` (the public URL of the Jupyter
    server, for setups nothing else reveals), JupyterHub's
    ``JUPYTERHUB_SERVICE_PREFIX`` (with ``JUPYTERHUB_PUBLIC_URL`` for the
    origin when the hub sets it), then the ``jpserver-<pid>.json`` file that the
    Jupyter server which started this kernel (``JPY_PARENT_PID``) wrote in the
    runtime directory.

    Returns:
        The location, or None outside Jupyter (terminal IPython, a kernel
        started by another client): links are then direct.
    """
    env = os.environ if environ is None else environ
    explicit = env.get(URL_ENV, "").strip()
    if explicit:
        return JupyterLocation(_base(urlsplit(explicit).path), _origin(explicit), True, URL_ENV)
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "").strip()
    if prefix:
        return JupyterLocation(_base(prefix), _origin(env.get("JUPYTERHUB_PUBLIC_URL", "")), True,
                               "JUPYTERHUB_SERVICE_PREFIX")
    info = _parent_server_info(env, runtime_dir)
    if info is None:
        return None
    base_url = _base(str(info.get("base_url") or "/"))
    return JupyterLocation(base_url, _origin(str(info.get("url") or "")), base_url != "/",
                           f"Jupyter server pid {info.get('pid')}")


def _parent_server_info(env: Mapping[str, str], runtime_dir: str | Path | None) -> dict[str, Any] | None:
    pid = env.get("JPY_PARENT_PID", "").strip()
    if not pid.isdigit():
        return None
    if runtime_dir is None:
        runtime_dir = env.get("JUPYTER_RUNTIME_DIR") or _default_runtime_dir()
    path = Path(runtime_dir) / f"jpserver-{pid}.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _default_runtime_dir() -> str:
    from jupyter_core.paths import jupyter_runtime_dir

    return str(jupyter_runtime_dir())
