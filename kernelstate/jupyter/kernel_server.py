"""Servers started from a kernel (``%serve``): start, list, stop; proxy-aware links.

A :class:`KernelServer` is a standalone kernelstate server living in the
kernel process. By default it runs on the kernel's own asyncio loop: it never
blocks a cell, and app code runs on the same thread as the notebook's cells, so
both may touch the same objects. ``threaded=True`` gives it its own loop in a
daemon thread instead (app code then runs concurrently with cells).

It binds 127.0.0.1 and serves only under a random 128-bit URL prefix, so a
local user who finds the port gets 404s without the link printed in the
notebook (sessions are signed as on every kernelstate server).

**Hosts and origins.** Behind jupyter-server-proxy (``{base_url}proxy/{port}/``)
the browser's ``Host`` and WebSocket ``Origin`` are the Jupyter server's, as the
browser sees it. The server allows exactly what the kernel knows of that
(:class:`~kernelstate.jupyter.proxy.JupyterLocation`: ``$KERNELSTATE_JUPYTER_URL``,
JupyterHub's public URL, or the URL the parent Jupyter server wrote in its
runtime file; a loopback name stands for all of them, a name of this machine
for all of its names), plus its own loopback names and ``--allow-websocket-origin``.
Nothing is learned from requests: a DNS-rebinding page could teach anything.

When the kernel cannot know the public URL (JupyterHub without ``public_url``,
Binder) and the prefix is the random one, any ``Host`` is answered and a
WebSocket is allowed from the origin its own ``Host`` names: the 128-bit prefix
is then what keeps a rebinding page out. Setting ``KERNELSTATE_JUPYTER_URL`` to
the URL users open Jupyter at makes both checks exact again.
jupyter-server-proxy itself requires Jupyter's login and checks a WebSocket's
Origin with Jupyter's policy before it reaches us.

The registry of servers is process-wide by nature (one kernel, its servers) and
is touched from the kernel's thread only.
"""
from __future__ import annotations

import ast
import atexit
import builtins
import inspect
import logging
import types
import webbrowser
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tornado.httputil import HTTPServerRequest

from ..loading import AppSpec, apps_from_object
from ..loops import running_loop
from ..server.hosts import LOOPBACK_NAMES, machine_hosts, request_host
from ..server.options import ServeOptions
from ..server.server import Server, running_servers
from ..session import Session
from .proxy import URL_ENV, JupyterLocation, secret_prefix

log = logging.getLogger(__name__)
START_TIMEOUT_S = 30.0


class KernelServer(Server):
    """A Server that allows the hosts and origins of the Jupyter server it is reached through."""

    host_hint = (f"set {URL_ENV} to the URL you open Jupyter at (before %serve), "
                 "or add --allow-websocket-origin={host} to the %serve line")

    def __init__(self, apps: list[AppSpec], options: ServeOptions, location: JupyterLocation | None = None,
                 secret_prefix: bool = True) -> None:
        super().__init__(apps, options)
        known = jupyter_hosts(location)
        self.extra_hosts.extend(known)
        self.extra_origins.extend(known)
        # Proxied through a Jupyter server whose public host the kernel cannot know.
        self.same_origin_only = bool(location is not None and location.proxied and not known and secret_prefix)
        if self.same_origin_only:
            self.extra_hosts.append("*")
            log.info("the Jupyter server's public URL is unknown (%s): answering any Host under the secret prefix; "
                     "set %s to check hosts exactly", location.source if location else "", URL_ENV)

    def origins_for(self, request: HTTPServerRequest) -> list[str]:
        if self.same_origin_only:
            return [*self.origin_allowlist, request_host(request, self.options.use_xheaders)]
        return self.origin_allowlist


def jupyter_hosts(location: JupyterLocation | None) -> list[str]:
    """``host:port`` entries for the Jupyter server at ``location``, as a browser may name it."""
    if location is None or not location.origin:
        return []
    parts = urlsplit(location.origin)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return []
    name = (parts.hostname or "").lower()
    if not name:
        return []
    names = {f"[{name}]" if ":" in name else name}
    if names & set(LOOPBACK_NAMES):
        names |= set(LOOPBACK_NAMES)
    elif name in {h.strip("[]") for h in machine_hosts()}:
        names |= machine_hosts() | set(LOOPBACK_NAMES)
    return [f"{n}:{port}" for n in sorted(names)]


class CellApp(AppSpec):
    """The code of a ``%%serve`` cell, run afresh for every session.

    Each session runs the code in a new module namespace that starts as a
    copy of the notebook's public names (those not starting with ``_``):
    the cell can use what earlier cells defined, and whatever it assigns is
    that session's own. Objects from the notebook are shared, as imports are.
    """

    def __init__(self, source: str, namespace: Mapping[str, Any] | None = None,
                 route: str = "/", title: str | None = None) -> None:
        self.source = source
        self.namespace = namespace if namespace is not None else {}
        self.code = compile(source, "<%%serve cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                            dont_inherit=True)
        super().__init__(route, title or "%%serve app")

    def notebook_names(self) -> dict[str, Any]:
        """A snapshot of the notebook's public names (retried if a thread resizes it)."""
        for _ in range(5):
            try:
                return {k: v for k, v in list(self.namespace.items())
                        if not k.startswith("_") and k not in ("In", "Out", "exit", "quit")}
            except RuntimeError:
                continue
        return {}

    async def run(self, session: Session) -> None:
        module = types.ModuleType(f"kernelstate_cell_{session.serial}")
        namespace = module.__dict__
        namespace.update(self.notebook_names())
        namespace["__builtins__"] = builtins
        try:
            result = eval(self.code, namespace)
            if inspect.iscoroutine(result):
                await result
        except BaseException:
            # A failed cell's traceback would keep its globals alive: drop them with the session.
            # After a successful run they stay, for tasks and cached objects that outlive the session.
            session.on_destroy(lambda s: namespace.clear())
            raise


@dataclass
class ServedApp:
    """One server started by ``%serve``, with the links a user should open."""

    server: Server
    label: str
    links: list[tuple[str, str]] = field(default_factory=list)   # (title, url)
    threaded: bool = False
    proxied: bool = False

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    @property
    def url(self) -> str:
        return self.links[0][1]


_served: dict[int, ServedApp] = {}
_exit_hook: list[bool] = []
EXIT_STOP_TIMEOUT_S = 5.0


def start(obj: Any, *, label: str, port: int = 0, threaded: bool = False,
          location: JupyterLocation | None = None, prefix: str | None = None,
          allow_websocket_origin: tuple[str, ...] = (), show: bool = False,
          title: str | None = None) -> ServedApp:
    """Start a server for ``obj`` (anything ``ks.serve`` takes, or an AppSpec list).

    Args:
        obj: a component, a callable, a path, a dict of them, or a list of AppSpec.
        label: what was served, for listings.
        port: 0 picks a free port.
        threaded: run on a new loop in a daemon thread instead of the running loop.
            Without a running loop (terminal IPython) the server is threaded anyway.
        location: the Jupyter server to link through (proxied when ``location.proxied``).
        prefix: URL prefix; None means a fresh random one.
        show: open the direct URL in a web browser (only when links are direct).
    """
    apps = obj if isinstance(obj, list) and all(isinstance(a, AppSpec) for a in obj) else apps_from_object(obj)
    secret = prefix is None
    options = ServeOptions.from_kwargs(port=port, address="127.0.0.1",
                                       prefix=secret_prefix() if secret else prefix,
                                       allow_websocket_origin=tuple(allow_websocket_origin), title=title)
    server = KernelServer(apps, options, location, secret_prefix=secret)
    if not threaded:
        if running_loop() is None:
            threaded = True
    if threaded:
        server.start_in_thread("kernelstate-serve", START_TIMEOUT_S)
    else:
        server.start()
    proxied = location is not None and location.proxied
    served = ServedApp(server, label, links_for(server, location), threaded, proxied)
    _served[served.port] = served
    if not _exit_hook:
        # When the kernel shuts down, destroy the sessions so their destroyed hooks run.
        atexit.register(_stop_at_exit)
        _exit_hook.append(True)
    if show and not proxied:
        webbrowser.open(served.url)
    return served


def links_for(server: Server, location: JupyterLocation | None) -> list[tuple[str, str]]:
    """``(title, url)`` per app: through ``location``'s proxy when proxied, else direct."""
    if location is None or not location.proxied:
        return server.app_urls()
    assert server.port is not None
    return [(app.title, location.proxy_url(server.port, server.options.prefix + app.route))
            for app in server.apps]


def _stop_at_exit() -> None:
    for app in list(_served.values()):
        try:
            app.server.stop(EXIT_STOP_TIMEOUT_S)
        except Exception:
            log.exception("stopping the kernelstate server on port %s at exit failed", app.server.port)
    _served.clear()


def served() -> list[ServedApp]:
    """Servers started by ``%serve`` and still running, by port."""
    for port in [p for p, s in _served.items() if not s.server.started]:
        del _served[port]
    return [_served[p] for p in sorted(_served)]


def other_servers() -> list[Server]:
    """Servers started with ``ks.serve`` in this process (not by ``%serve``)."""
    mine = {id(s.server) for s in _served.values()}
    return [s for s in running_servers() if id(s) not in mine and s.started]


def stop(port: int | None = None) -> list[int]:
    """Stop the server on ``port`` (None: every server in this kernel); the ports stopped.

    Raises:
        LookupError: no running server listens on ``port``.
    """
    targets: list[Server] = [s.server for s in served()] + other_servers()
    if port is not None:
        targets = [s for s in targets if s.port == port]
        if not targets:
            running = sorted(s.port for s in [x.server for x in served()] + other_servers() if s.port)
            raise LookupError(f"no kernelstate server on port {port}; running: {running or 'none'}")
    stopped = []
    for server in targets:
        server_port = server.port
        server.stop()
        _served.pop(server_port or -1, None)
        if server_port is not None:
            stopped.append(server_port)
    return sorted(stopped)
