"""The standalone server's routes: one table from its options and apps.

Order matters: the Host check comes first (it matches every path of a foreign
host), then assets, liveness, the prefix redirect, the root, and each app's
page and WebSocket. Behind a login (:mod:`.gate`) the provider's login and
logout routes follow the Host check, and every other route but liveness and
kernelstate's stylesheet/JS assets is gated. App routes are literal paths (``re.escape``): ``a.b.py``
never also answers ``/aXb``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bokeh.util.paths import bokehjs_path
from tornado import web

from ..web.static import ConfinedStaticHandler
from .gate import gate_routes, gated
from .handlers import (
    DocHandler,
    DocWebSocketHandler,
    IndexHandler,
    LivenessHandler,
    NotFoundHandler,
    ReadinessHandler,
    ResponseHeaders,
)
from .hosts import host_check_rule

if TYPE_CHECKING:
    from .server import Server

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
access_log = logging.getLogger("kernelstate.access")


def application(server: Server) -> web.Application:
    """The Tornado application of ``server``."""
    options = server.options
    p = re.escape(options.prefix)
    site = {"site": server}
    routes: list[Any] = [
        host_check_rule(server.host_allowlist, options.use_xheaders, server.host_hint),
        (rf"{p}/static/(.*)", ConfinedStaticHandler, {"path": bokehjs_path()}),
        (rf"{p}/ks-static/(.*)", ConfinedStaticHandler, {"path": str(STATIC_DIR)}),
        (rf"{p}/liveness/?", LivenessHandler, site),
        (rf"{p}/readiness/?", ReadinessHandler, site),
    ]
    for name, directory in options.static_dirs.items():
        routes.append((rf"{p}/{re.escape(name)}/(.*)", ConfinedStaticHandler, {"path": str(Path(directory).resolve())}))
    if p:
        # The prefix without its slash: the page's relative asset URLs would resolve outside it.
        routes.append((p, web.RedirectHandler, {"url": options.prefix + "/", "permanent": False}))
    index_app = server.index_app()
    if index_app is not None:
        routes.append((rf"{p}/ws", DocWebSocketHandler, {**site, "app": index_app}))
        routes.append((rf"{p}/?", DocHandler, {**site, "app": index_app}))
    elif len(server.apps) == 1 and options.index is None:
        routes.append((rf"{p}/?", web.RedirectHandler, {"url": f"{options.prefix}{server.apps[0].route}",
                                                         "permanent": False}))
    else:
        routes.append((rf"{p}/?", IndexHandler, site))
    for app in server.apps:
        if app.route == "/":
            continue
        route = p + re.escape(app.route)
        routes.append((rf"{route}/ws", DocWebSocketHandler, {**site, "app": app}))
        routes.append((rf"{route}/?", DocHandler, {**site, "app": app}))
    default_handler: type[web.RequestHandler] = NotFoundHandler
    settings: dict[str, Any] = {}
    if server.auth is not None:   # nothing but liveness, the login pages and their stylesheet before login
        routes = gate_routes(routes, server.auth, server.signer, open_patterns={rf"{p}/liveness/?", rf"{p}/readiness/?", rf"{p}/ks-static/(.*)"},
                             library_patterns={rf"{p}/static/(.*)"})
        routes[1:1] = server.auth.routes()
        settings = server.auth.settings(server.signer.key, tls=bool(options.ssl_certfile))
        default_handler = gated(NotFoundHandler, server.auth, server.signer)
    keep_alive = options.keep_alive_ms / 1000.0 or None
    app_ = web.Application(
        routes, default_handler_class=default_handler, default_handler_args=site, **settings,
        websocket_ping_interval=keep_alive, websocket_ping_timeout=keep_alive,
        websocket_max_message_size=options.websocket_max_message_size,
        log_function=log_request, compress_response=True,
    )
    headers = server.page_headers
    app_.add_transform(lambda request: ResponseHeaders(request, headers))  # type: ignore[arg-type]
    return app_


def log_request(handler: web.RequestHandler) -> None:
    """One access-log line per request: INFO below 400, WARNING for 4xx, ERROR for 5xx."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    access_log.log(level, "%d %s %s %.1fms", status, handler.request.method,
                   handler.request.uri, 1000.0 * handler.request.request_time())
