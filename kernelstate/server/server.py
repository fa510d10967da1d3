"""Server: the standalone kernelstate server, and ``ks.serve``.

A Server runs on one asyncio loop: the caller's (inside a kernel, where it
does not block), its own in a daemon thread (``threaded=True``), or a new one
that blocks until stopped (a plain script). ``stop()`` may be called from any
thread; it destroys every session (running their destroyed hooks) and frees
the port. With a session store (``--session-store``) stopping is not the end
of the sessions: their records are kept, their tabs are closed with 1012 and
reconnect to whichever process serves them next (:mod:`kernelstate.store`).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import socket
import threading
import webbrowser
from pathlib import Path
from typing import Any

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPServerRequest
from tornado.ioloop import PeriodicCallback

from .._config import config
from ..auth.identity import User
from ..cluster.coordinator import configure_from_options
from ..coroutines import install as install_coroutine_callbacks
from ..endpoint import CloseCode
from ..errors import AppLoadError
from ..host import InProcessHost
from ..loading import AppSpec, apps_from_object
from ..loops import running_loop
from ..reuse import ReuseCache
from ..session import RequestInfo
from ..store import store_secret
from ..web.firstuse import FirstUse, default_directory
from ..web.manager import SessionEntry, SessionManager
from ..web.origins import default_allowlist
from ..web.page import PageOptions, render_message
from ..web.pages import PageService
from ..web.tokens import Signer
from .authsetup import build_auth
from .handlers import request_info
from .hosts import ALLOW_HOST_HINT, HostAllowlist, listening_hosts
from .lifecycle import open_recovery, warm_apps, watch_apps
from .listening import Listener, bind, http_server
from .options import ServeOptions
from .preload import preload
from .routes import application

log = logging.getLogger(__name__)
SWEEP_COLLECT_DELAY_S = 0.25  # after a sweep destroyed sessions, collect their cycles this much later


class Server:
    """A running (or ready to run) kernelstate server."""

    host_hint = ALLOW_HOST_HINT   # what a refused host's page and log line say to do

    def __init__(self, apps: list[AppSpec], options: ServeOptions | None = None) -> None:
        if not apps:
            raise AppLoadError("nothing to serve: no apps were given", path="")
        self.apps = apps
        self.options = options or ServeOptions()
        store_url, secret = self.options.session_store_url, self.options.secret
        if store_url and secret is None:
            secret = store_secret(store_url)  # a restarted process must sign as before
        self.signer = Signer.create(secret)
        self.recovery = open_recovery(self.options, self.signer.key)
        self.auth = build_auth(self.options, self.signer.key)   # None: no login configured
        self.manager = SessionManager(self._create_host, self.options.unused_session_lifetime_ms,
                                      self.options.max_sessions,
                                      max_sessions_per_client=self.options.max_sessions_per_client,
                                      first_connect_timeout_s=self.options.first_connect_timeout_s)
        self.reuse = ReuseCache(self.options.reuse_sessions_max_keys, verify=self.options.reuse_sessions == "verify")
        self.pages = PageService(self.manager, self.signer, self.reuse,
                                 token_expiration_s=self.options.session_token_expiration_s,
                                 reuse_mode=self._reuse_mode,
                                 default_key_func=lambda: config.process_value("session_key_func"),
                                 bind_user=self.auth is not None,
                                 stateless=lambda: self.options.stateless)
        self.first_use = (FirstUse(default_directory(self.signer.key), self.options.session_token_expiration_s)
                          if self.options.stateless else None)   # stateless pages: web/anyproc.py
        self.sockets: list[socket.socket] | None = None   # bound already (--num-procs workers share them)
        self.draining = False
        self.port: int | None = None
        self.extra_origins: list[str] = []
        self.extra_hosts: list[str] = []
        self._hosts: HostAllowlist | None = None
        self._own_names: list[str] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.warm_task: asyncio.Task[None] | None = None
        self._collect_pending = False
        self._http: HTTPServer | None = None
        self._listener: Listener | None = None
        self._cleanup: PeriodicCallback | None = None
        self._stopped = asyncio.Event()
        self._stop_done = threading.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self.started = False

    # -- URLs -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = "localhost" if self.options.address in ("127.0.0.1", "0.0.0.0", "::", "localhost") else self.options.address
        return f"{'https' if self.options.ssl_certfile else 'http'}://{host}:{self.port}{self.options.prefix}/"

    def app_urls(self) -> list[tuple[str, str]]:
        return [(app.title, self.url.rstrip("/") + app.route) for app in self.apps]

    @property
    def origin_allowlist(self) -> list[str]:
        """Exact WebSocket origins: the server's own names (as hosts), explicit ones, a subclass's extras."""
        assert self.port is not None
        own = default_allowlist(self.options.address, self.port) if self.options.unix_socket else self._own_names
        return [*self.options.allow_websocket_origin, *self.extra_origins,
                *[h for h in self.options.allow_host if "*" not in h], *own]

    def origins_for(self, request: HTTPServerRequest) -> list[str]:
        """The WebSocket origins allowed for ``request`` (a subclass may depend on it)."""
        return self.origin_allowlist

    def host_allowlist(self) -> HostAllowlist:
        """The hosts this server answers to (see :mod:`kernelstate.server.hosts`); known once it listens."""
        if self._hosts is None:
            self._own_names = listening_hosts(self.options.address, self.port or 0, bool(self.options.unix_socket))
            self._hosts = HostAllowlist.parse([*self.options.allow_host, *self.options.allow_websocket_origin,
                                               *self.extra_hosts, *self._own_names])
        return self._hosts

    def root_url_for(self, path: str) -> str:
        depth = path.count("/") - 1 - self.options.prefix.count("/")
        return "../" * depth if depth > 0 else "./"

    # -- sessions ----------------------------------------------------------------------
    async def _create_host(self, app: AppSpec, request: RequestInfo, session_id: str) -> InProcessHost:
        host = await InProcessHost.create(app, request, session_id, self.loop,
                                          max_message_bytes=self.options.websocket_max_message_size,
                                          limits=self.options.message_limits, lazy=True)
        if self.recovery is not None:
            self.recovery.track(host.session, app, request)
        return host

    async def recover(self, app: AppSpec, session_id: str, request: RequestInfo) -> SessionEntry | None:
        """Rebuild ``session_id`` from the session store for a reconnecting tab (None: nothing to rebuild)."""
        if self.recovery is None:
            return None
        return await self.recovery.recover(self.manager, app, session_id, request)

    def _reuse_mode(self) -> bool | str:
        return self.options.reuse_sessions or config.process_value("reuse_sessions")

    # -- what the handlers see (handlers.Site) -----------------------------------------
    @property
    def dev(self) -> bool:
        return self.options.dev

    @property
    def prefix(self) -> str:
        return self.options.prefix

    @property
    def app_routes(self) -> list[str]:
        return [a.route for a in self.apps]

    @property
    def page_headers(self) -> dict[str, str]:
        """Framing and referrer headers every response of this server carries."""
        ancestors = self.options.frame_ancestors
        headers = {"Content-Security-Policy": "frame-ancestors " + " ".join(ancestors),
                   "Referrer-Policy": self.options.referrer_policy}
        if ancestors == ("'self'",):
            headers["X-Frame-Options"] = "SAMEORIGIN"  # for browsers without CSP frame-ancestors
        elif ancestors == ("'none'",):
            headers["X-Frame-Options"] = "DENY"
        return headers

    def page_options_for(self, path: str) -> PageOptions:
        spinner = self.options.global_loading_spinner or config.process_value("global_loading_spinner")
        return PageOptions(root_url=self.root_url_for(path), spinner=spinner)

    def index_links(self, root: str) -> list[dict[str, Any]]:
        return [{"url": root + app.route.lstrip("/"), "title": app.title, "description": app.route}
                for app in self.apps]

    async def page_for(self, app: AppSpec, request: HTTPServerRequest, user: User | None = None) -> str:
        """The HTML for one page request: a new session, or a cached page for a pending one."""
        return await self.pages.page_for(app, request_info(request, user), request, self.page_options_for(request.path))

    # -- start/stop --------------------------------------------------------------------
    def _application(self) -> web.Application:
        return application(self)

    def index_app(self) -> AppSpec | None:
        """The app served at the root (``/``, or ``--index NAME``), or None for the index page."""
        root = [a for a in self.apps if a.route == "/"]
        if root:
            return root[0]
        if self.options.index and not self.options.index.endswith(".html"):
            name = self.options.index.strip("/")
            for app in self.apps:
                if app.route.strip("/") == name or Path(name).stem == app.route.strip("/"):
                    return app
            raise AppLoadError(f"--index {self.options.index!r} names no served app; apps: {[a.route for a in self.apps]}", path=name)
        return None

    def render_index(self, links: list[dict[str, Any]], root: str) -> str:
        if self.options.index and self.options.index.endswith(".html"):
            from jinja2 import Template

            template = Template(Path(self.options.index).read_text(encoding="utf-8"), autoescape=True)
            return str(template.render(items=links, title=self.options.title or "kernelstate apps"))
        return render_message(self.options.title or "kernelstate apps", self.options.title or "Apps on this server",
                              [f"{len(links)} app(s). Each tab gets its own session."], root, links=links)

    def start(self) -> None:
        """Start serving on the running loop (call from inside it).

        Without ``--warm`` the port is bound before this returns. With it, every
        app runs once first and the port is bound only then, so nobody connects
        to a server that is still warming; ``await ready()`` waits for that.
        """
        if self.started:
            return
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        if self.options.num_threads is not None:
            # The process pool size (kernelstate.threads): the same as ks.extension(nthreads=N).
            config.set("nthreads", self.options.num_threads, process=True)
        configure_from_options(self.options.session_store, self.options.secret)   # before --setup and any app
        if self.options.dask_scheduler is not None:
            config.set("dask_scheduler", self.options.dask_scheduler, process=True)
        install_coroutine_callbacks()
        preload()
        self._http = http_server(self._application(), self.options)
        self._cleanup = PeriodicCallback(self._sweep, self.options.check_unused_sessions_ms)
        self._cleanup.start()
        self.started = True
        try:
            if self.options.setup:
                self._run_setup(self.options.setup)
            if self.options.warm:
                self.warm_task = self.loop.create_task(self._warm_then_listen())
                self.warm_task.add_done_callback(self._warm_done)
            else:
                self._listen()
        except BaseException:
            self._teardown()
            raise
        if self.options.autoreload:
            self._watch_task = self.loop.create_task(watch_apps(self, self._stopped))
        if self.options.show:
            self.loop.create_task(self._show())

    def _listen(self) -> None:
        """Bind the port (or unix socket) and accept connections."""
        assert self._http is not None
        sockets = self.sockets or bind(self.options)
        self.port = 0 if self.options.unix_socket else sockets[0].getsockname()[1]
        self._hosts = None
        self.host_allowlist()   # resolves this machine's names now, not in the first request
        self._listener = Listener(self._http, self.options.max_connections_per_client)
        self._listener.add_sockets(sockets)

    async def _warm_then_listen(self) -> None:
        await self.warm()
        if self.started:
            self._listen()

    def _warm_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("cannot listen on %s:%s after warming: %s", self.options.address, self.options.port, exc)
            self._teardown()

    async def ready(self) -> None:
        """Return once the server accepts connections (at once unless it is still warming).

        Raises what binding raised (``OSError`` when the port is taken).
        """
        if self.warm_task is not None:
            await asyncio.shield(self.warm_task)

    async def _show(self) -> None:
        await self.ready()
        webbrowser.open(self.app_urls()[0][1])

    def _sweep(self) -> None:
        """Expire unused sessions, then collect their reference cycles soon rather than at a random later pause.

        The collection waits a moment: a destroyed session's cancelled tasks and
        closing sockets hold parts of it until the loop has run their callbacks.
        """
        if self.recovery is not None and self.loop is not None:
            self.recovery.worker.spawn(self.recovery.sweep())
        if self.first_use is not None:
            self.first_use.sweep()
        if self.manager.cleanup() and self.loop is not None and not self._collect_pending:
            self._collect_pending = True
            self.loop.call_later(SWEEP_COLLECT_DELAY_S, self._collect)

    def _collect(self) -> None:
        self._collect_pending = False
        gc.collect()

    def _run_setup(self, path: str) -> None:
        source = Path(path).read_text(encoding="utf-8")
        namespace: dict[str, Any] = {"__name__": "kernelstate_setup", "__file__": str(Path(path).resolve())}
        # No session is activated: ks.state falls back to the process-wide kernel session,
        # and ks.config assignments set process values (as intended for a setup script),
        # not overrides on the kernel session that no served session would see.
        exec(compile(source, path, "exec"), namespace)
        log.info("ran setup script %s", path)

    async def warm(self) -> None:
        """Run every app once (and cache its page when reusing); failures are reported, not fatal."""
        await warm_apps(self)

    async def wait_stopped(self) -> None:
        """Return once the server has stopped (from any thread's ``stop()``)."""
        await self._stopped.wait()

    async def serve_until_stopped(self) -> None:
        self.start()
        await self.ready()
        await self._stopped.wait()

    def start_in_thread(self, name: str | None = None, timeout: float | None = None) -> None:
        """Serve on an event loop of its own in a daemon thread; return once it accepts connections.

        Raises what starting raised (``OSError`` when the port is taken), or
        ``TimeoutError`` when ``timeout`` seconds pass first.
        """
        ready = threading.Event()
        errors: list[BaseException] = []

        async def main() -> None:
            try:
                self.start()
                await self.ready()
            except BaseException as exc:
                errors.append(exc)
                return
            finally:
                ready.set()
            await self._stopped.wait()

        self.thread = threading.Thread(target=asyncio.run, args=(main(),),
                                       name=name or f"kernelstate-server-{self.options.port}", daemon=True)
        self.thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"the kernelstate server thread did not start within {timeout:.0f} s")
        if errors:
            raise errors[0]

    def _teardown(self) -> None:
        if not self.started:
            return
        self.started = False
        if self._cleanup is not None:
            self._cleanup.stop()
        if self.recovery is not None:
            # Shutdown is not the end of the sessions: their records stay, their tabs reconnect elsewhere.
            self.recovery.detach_all(self.manager, CloseCode.SERVICE_RESTART, "server restarting: reconnecting")
            self.recovery.close()
        else:
            self.manager.destroy_all()
        if self._listener is not None:
            self._listener.stop()
        if self._http is not None:
            self._http.stop()
        for task in (self.warm_task, self._watch_task):
            if task is not None:
                task.cancel()
        self._stopped.set()
        self._stop_done.set()

    def drain(self) -> None:
        """SIGTERM: /readiness answers 503 for ``drain_timeout_s`` while serving goes on, then stop."""
        if not self.draining and self.loop is not None:
            self.draining = True
            log.info("draining: /readiness answers 503; stopping in %.1f s", self.options.drain_timeout_s)
            self.loop.call_later(self.options.drain_timeout_s, self.stop)

    def stop(self, timeout: float = 10.0) -> None:
        """Destroy every session, free the port and (threaded) end the thread."""
        loop = self.loop
        if loop is None or not self.started:
            return
        running = running_loop()
        if running is loop:
            self._teardown()
        elif loop.is_running():
            self._stop_done.clear()
            loop.call_soon_threadsafe(self._teardown)
            self._stop_done.wait(timeout)
        else:
            self._teardown()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)
        _running_servers.discard(self)

    def __repr__(self) -> str:
        return f"<kernelstate Server {self.url if self.port else '(not started)'} apps={[a.route for a in self.apps]}>"


_running_servers: set[Server] = set()


def running_servers() -> list[Server]:
    """Servers started by ``ks.serve`` in this process and not yet stopped."""
    return sorted(_running_servers, key=lambda s: s.port or 0)


def serve(obj: Any, port: int = 0, address: str = "127.0.0.1", show: bool = False,
          threaded: bool = False, start: bool = True, **options: Any) -> Server:
    """Serve a component, a callable, a script/notebook path, or a dict of them.

    Returns at once with ``threaded=True`` (own loop, daemon thread) or inside a
    running loop (a kernel); otherwise ``start=True`` blocks until stopped.
    """
    opts = ServeOptions.from_kwargs(port=port, address=address, show=show, **options)
    server = Server(apps_from_object(obj), opts)
    if not start:
        return server
    if threaded:
        server.start_in_thread()
        _running_servers.add(server)
        return server
    if running_loop() is None:
        _running_servers.add(server)
        try:
            asyncio.run(server.serve_until_stopped())
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
        return server
    server.start()
    _running_servers.add(server)
    return server
