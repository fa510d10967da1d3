"""The kernelstate Jupyter server extension.

Enabled by ``jupyter_config/jupyter_server_config.d/kernelstate.json`` (installed
into ``etc/jupyter`` with the package). In the server process it runs:

- a :class:`~kernelstate.web.manager.SessionManager` for apps served at
  ``{base_url}kernelstate/apps/<path>``, whose sessions are
  :class:`~kernelstate.jupyter.relay.KernelHost` s (a kernel per session, from
  a :class:`~kernelstate.jupyter.pool.KernelPool`);
- a :class:`~kernelstate.jupyter.relay.RelayRegistry`: one kernel client per
  kernel, relaying browser WebSockets to Documents hosted in kernels (cell
  outputs and app sessions);
- the handlers in :mod:`kernelstate.jupyter.handlers`.

Configure it like any Jupyter app, e.g. ``c.KernelstateApp.kernel_pool_size = 2``
or ``jupyter lab --KernelstateApp.reuse_sessions=True``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bokeh.util.paths import bokehjs_path
from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Bool, Callable, Dict, Float, Integer, Unicode

from ..endpoint import CloseCode
from ..errors import AppLoadError
from ..limits import MessageLimits
from ..loading import AppSpec
from ..reuse import ReuseCache
from ..session import RequestInfo
from ..web.manager import SessionManager
from ..web.page import PageOptions
from ..web.pages import PageService, ReuseMode
from ..web.tokens import Signer
from .apps import KernelApp
from .handlers import (
    AppPageHandler,
    AppWebSocketHandler,
    CellWebSocketHandler,
    IndexHandler,
    PingHandler,
    SessionHandler,
    SessionsHandler,
    StaticHandler,
)
from .kernel_host import KERNEL_DIED_REASON, KernelHost
from .pool import KernelPool, KernelStartError
from .relay import KernelGoneError, RelayRegistry

log = logging.getLogger(__name__)
KS_STATIC = str(Path(__file__).resolve().parent.parent / "static")


class KernelstateApp(ExtensionApp):
    """Serves kernelstate apps from notebooks and keeps components in notebook cells live."""

    name = "kernelstate"
    load_other_extensions = True

    kernel_pool_size = Integer(1, min=0, help=(
        "How many pre-started kernels wait for new app sessions (each session takes one "
        "and gets a kernel of its own). 0 starts a kernel per request.")).tag(config=True)
    pool_kernel_name = Unicode("", help=(
        "Kernelspec of the pre-started kernels; empty means the server's default kernel. "
        "Apps needing another kernelspec (notebook metadata or ?kernel=) start one on demand.")).tag(config=True)
    unused_session_lifetime_ms = Integer(15000, min=0, help=(
        "An app session with no open connection for this long is destroyed and its kernel "
        "shut down (milliseconds).")).tag(config=True)
    check_unused_sessions_ms = Integer(17000, min=100, help=(
        "How often unused app sessions are looked for (milliseconds).")).tag(config=True)
    session_token_expiration_s = Float(300.0, help=(
        "How long a served page's token may be used to open its session's WebSocket (seconds).")).tag(config=True)
    reuse_sessions = Bool(False, help=(
        "Cache each app's first rendered page and answer later requests with it at once; the "
        "new session's app code then runs when its WebSocket connects (like `kernelstate serve "
        "--reuse-sessions`). The page is not cached if the app read request values.")).tag(config=True)
    reuse_sessions_verify = Bool(False, help=(
        "With reuse_sessions: also render a fresh session for every cached page and log any "
        "difference from the cached one (a check for development; it costs a kernel per hit).")).tag(config=True)
    session_key_func = Callable(None, allow_none=True, help=(
        "The reuse cache key of a page request: a function of the Tornado request (default: its "
        "path). Set it in jupyter_server_config.py; an app's own ks.extension(session_key_func=...) "
        "runs in its kernel and cannot key this server's cache.")).tag(config=True)
    reuse_sessions_max_keys = Integer(32, min=1, help="How many pages the reuse cache keeps.").tag(config=True)
    max_sessions_per_user = Integer(8, min=1, help=(
        "Most app sessions (each a kernel) one signed-in user may have at once; further page "
        "requests get 503. Requests authenticated with the server's token are not counted.")).tag(config=True)
    max_sessions = Integer(None, allow_none=True, help=(
        "Most app sessions (and so app kernels) at once; further page requests get 503.")).tag(config=True)
    max_sessions_per_client = Integer(None, allow_none=True, min=0, help=(
        "Most app sessions one client address may hold at once; its further page requests get "
        "503. None: half of max_sessions, or 100 without it; 0: no per-client limit.")).tag(config=True)
    first_connect_timeout_s = Float(5.0, min=0.0, help=(
        "An app session whose page has not connected within this long is destroyed (its kernel "
        "shut down) and releases its slot; a WebSocket that comes later with a valid token gets "
        "the session created again (seconds; 0: no window).")).tag(config=True)
    app_startup_timeout_s = Float(60.0, help=(
        "How long a kernel may take to start and run an app before the page fails (seconds).")).tag(config=True)
    message_limits = Dict({}, help=(
        "Bounds on the work one browser message may cause in a kernel, e.g. {'models': 64}; "
        "names: values, depth, models, references (see kernelstate.limits). A message over a "
        "bound closes its connection with code 4009.")).tag(config=True)
    kernel_poll_interval_ms = Integer(1000, min=50, help=(
        "How often kernels with relayed connections are checked for death or restart; a dead "
        "kernel's pages are told within about this long (milliseconds).")).tag(config=True)

    # -- setup ------------------------------------------------------------------------------
    def initialize_settings(self) -> None:
        serverapp = self.serverapp
        assert serverapp is not None
        self.signer = Signer.create(None)
        self.relays = RelayRegistry(serverapp.kernel_manager, self.kernel_poll_interval_ms / 1000.0,
                                    MessageLimits.from_mapping(self.message_limits))
        self.pool = KernelPool(serverapp.kernel_manager, self.relays, self.kernel_pool_size,
                               self._pool_kernel_name, self.app_startup_timeout_s)
        self.manager = SessionManager(self._create_host, self.unused_session_lifetime_ms, self.max_sessions,
                                      max_sessions_per_client=self.max_sessions_per_client,
                                      first_connect_timeout_s=self.first_connect_timeout_s)
        self.reuse = ReuseCache(self.reuse_sessions_max_keys, verify=self.reuse_sessions_verify)
        self.pages = PageService(self.manager, self.signer, self.reuse,
                                 token_expiration_s=self.session_token_expiration_s,
                                 reuse_mode=self._reuse_mode, default_key_func=lambda: self.session_key_func)
        self._cleanup: PeriodicCallback | None = None

    def initialize_handlers(self) -> None:
        ks = "kernelstate"
        self.handlers.extend([
            (rf"{ks}/?", IndexHandler),
            (rf"{ks}/apps/?", IndexHandler),
            (rf"{ks}/apps/(.+)/ws", AppWebSocketHandler),
            (rf"{ks}/apps/(.+)", AppPageHandler),
            (rf"{ks}/kernels/([^/]+)/docs/([^/]+)/([^/]+)/ws", CellWebSocketHandler),
            (rf"{ks}/static/(.*)", StaticHandler, {"path": bokehjs_path()}),
            (rf"{ks}/ks-static/(.*)", StaticHandler, {"path": KS_STATIC}),
            (rf"{ks}/api/ping", PingHandler),
            (rf"{ks}/api/sessions", SessionsHandler),
            (rf"{ks}/api/sessions/([^/]+)", SessionHandler),
        ])

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        self.start_background()

    def start_background(self) -> None:
        """Start the unused-session check and fill the kernel pool (idempotent; needs a running loop)."""
        if self._cleanup is None:
            self._cleanup = PeriodicCallback(self._sweep, self.check_unused_sessions_ms)
            self._cleanup.start()
            self.pool.fill()

    def _sweep(self) -> None:
        self.manager.cleanup()

    async def stop_extension(self) -> None:
        if getattr(self, "manager", None) is None:
            return  # settings were never initialized
        if self._cleanup is not None:
            self._cleanup.stop()
        self.manager.destroy_all(CloseCode.SERVER_STOPPING, "the Jupyter server is stopping")
        await self.pool.close()
        self.relays.stop_all()

    # -- used by handlers ------------------------------------------------------------------
    @property
    def root_dir(self) -> str:
        assert self.serverapp is not None
        return str(self.serverapp.contents_manager.root_dir)

    @property
    def allow_hidden(self) -> bool:
        assert self.serverapp is not None
        return bool(getattr(self.serverapp.contents_manager, "allow_hidden", False))

    def sessions_of(self, user: str | None) -> int:
        """How many live app sessions ``user`` owns."""
        return sum(1 for e in self.manager.entries() if e.host.owner == user)

    def default_kernel_name(self) -> str:
        assert self.serverapp is not None
        return str(getattr(self.serverapp.kernel_manager, "default_kernel_name", "") or "python3")

    def _pool_kernel_name(self) -> str:
        return self.pool_kernel_name or self.default_kernel_name()

    def page_options(self) -> PageOptions:
        assert self.serverapp is not None
        return PageOptions(root_url=self.serverapp.base_url.rstrip("/") + "/kernelstate/")

    def _reuse_mode(self) -> ReuseMode:
        if not self.reuse_sessions:
            return False
        return "verify" if self.reuse_sessions_verify else True

    async def _create_host(self, app: AppSpec, request: RequestInfo, session_id: str) -> KernelHost:
        assert isinstance(app, KernelApp)
        try:
            kernel_id = await self.pool.acquire(app.kernel_name)
            relay = await self.relays.get(kernel_id)
        except (KernelStartError, KernelGoneError) as exc:
            raise AppLoadError(f"app {app.route}: {exc}", path=app.route, cause=exc) from exc
        return await KernelHost.create(
            session_id=session_id, path=str(app.path), route=app.route, request=request, kernel_id=kernel_id,
            relay=relay, timeout_s=self.app_startup_timeout_s, shutdown_kernel=self.pool.shutdown,
            on_lost=self._host_lost)

    def _host_lost(self, host: KernelHost, code: int, reason: str) -> None:
        log.warning("app session %s lost its kernel %s: %s", host.session_id[:12], host.kernel_id, reason)
        self.manager.destroy(host.session_id, code, KERNEL_DIED_REASON if code == CloseCode.KERNEL_DIED
                             else "the app's kernel closed the session: reload the page")
