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

Security, both ways: the kernelstate server binds 127.0.0.1 and serves only
under a random 128-bit path prefix, so another local user who can connect to
the port finds nothing but 404s (the prefix shows in the user's own address
bar; it guards the port, not the page). The browser gets there only through
jupyter-server-proxy, which requires Jupyter's authentication for HTTP and
WebSocket alike (403 on an unauthenticated upgrade since 4.1.1) and checks the
WebSocket's Origin with Jupyter's own policy before proxying it. The launcher
then presents the proxied WebSocket to kernelstate as same-origin
(``request_headers_override``, with its own ``Host`` too), so Jupyter's origin
decision is the one that counts and kernelstate needs no ``--allow-host`` or
``--allow-websocket-origin '*'``; a ``%serve`` server allows the Jupyter
server's host as the kernel knows it (:mod:`kernelstate.jupyter.kernel_server`).

This module is imported by the Jupyter server at startup and by ``%serve``:
standard library only.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import sys
from collections.abc import Callable, Mapping
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
_SECRET = re.compile(r"^/ks-[0-9a-f]{32}(?=/|$)")


def secret_prefix() -> str:
    """A fresh random URL prefix (128 bits), like ``/ks-3f2a...``."""
    return "/ks-" + secrets.token_hex(16)


def setup_kernelstate() -> dict[str, Any]:
    """The jupyter-server-proxy server process for the launcher entry.

    Returns:
        The ``ServerProcess`` settings: ``kernelstate serve DIR`` on a free
        loopback port under a random prefix. A request without the prefix
        (the launcher's ``{base_url}kernelstate-proxy/``, a Binder deep link)
        is redirected under it, so the page's own URL carries it and so does
        the WebSocket URL BokehJS derives from the page's (jupyter-server-proxy
        maps the paths of HTTP requests only, never of WebSockets).
    """
    directory = os.environ.get(DIR_ENV) or os.getcwd()
    prefix = secret_prefix()
    return {
        "command": [sys.executable, "-m", "kernelstate.cli", "serve", directory,
                    "--port", "{port}", "--address", "127.0.0.1", "--prefix", prefix],
        "timeout": START_TIMEOUT_S,
        "absolute_url": False,
        "rewrite_response": redirect_under(prefix),
        # jupyter-server-proxy has checked the browser's Origin against Jupyter's
        # policy before it proxies; show kernelstate its own Origin and Host.
        "request_headers_override": {"Origin": "http://127.0.0.1:{port}", "Host": "127.0.0.1:{port}"},
        "new_browser_tab": True,
        "launcher_entry": {
            "enabled": True,
            "title": "kernelstate apps",
            "icon_path": str(ICON_PATH),
            "category": "Notebook",
        },
    }


def under_prefix(prefix: str, path: str) -> str | None:
    """Where a proxied ``path`` belongs under ``prefix``; None if it is there already.

    A path that starts with another secret prefix gets the current one
    instead: a bookmark, or a permanent redirect the browser cached, from
    before the Jupyter server restarted with a new secret.
    """
    if not path.startswith("/"):
        path = "/" + path
    if path == prefix or path.startswith(prefix + "/"):
        return None
    return prefix + _SECRET.sub("", path, count=1)


def redirect_under(prefix: str) -> Callable[..., None]:
    """A ``rewrite_response`` that answers requests outside ``prefix`` with a redirect into it.

    The proxy then rewrites the ``Location`` under the public URL
    (``{base_url}kernelstate-proxy/ks-.../...``).
    """
    def rewrite_response(response: Any, path: str, request: Any) -> None:
        target = under_prefix(prefix, path)
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

    return rewrite_response


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
