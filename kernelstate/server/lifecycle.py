"""Parts of a standalone server's life kept out of server.py: warming apps (``--warm``), watching app
files (``--autoreload``) and opening the session store's recovery (``--session-store``)."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..reuse import make_request
from ..store import open_store
from ..store.recovery import SessionRecovery
from ..store.urls import redacted
from .options import ServeOptions

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("kernelstate.server.server")
RELOAD_CODE = 4100   # close code of a session whose app changed under --autoreload


async def warm_apps(server: Server) -> None:
    """Run every app once (and cache its page when reusing); failures are reported, not fatal."""
    total = len(server.apps)
    for i, app in enumerate(server.apps, 1):
        log.info("warming %d/%d: %s", i, total, app.route)
        path = server.options.prefix + (app.route if app.route != "/" else "/")
        request = make_request(path)
        try:
            before = {e.id for e in server.manager.entries()}
            await server.page_for(app, request)
            for entry in server.manager.entries():
                if entry.id not in before:
                    entry.host.populate()   # warm the models' code too, not only the app's
                    server.manager.destroy(entry.id)
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc
            log.error("warming %s failed: %s: %s (the server keeps serving)", app.route, type(cause).__name__, cause)
    log.info("warmed %d app(s)", total)


async def watch_apps(server: Server, stop_event: asyncio.Event) -> None:
    """--autoreload: reload the sessions of apps whose files, or local modules they import, change."""
    from watchfiles import awatch

    from ..autoreload import AppWatch

    watch = AppWatch(app.source_path for app in server.apps if app.source_path is not None)
    if not watch.app_dirs:
        return
    # Events in the apps' folders wake the check at once; the timeout makes it run at least every second.
    async for _ in awatch(*watch.app_dirs, stop_event=stop_event, recursive=False, debounce=200,
                          rust_timeout=1000, yield_on_timeout=True):
        changed = watch.changed()
        if not changed:
            continue
        affected = watch.reload(changed)
        for entry in server.manager.entries():
            if entry.app.source_path in affected:
                server.manager.destroy(entry.id, RELOAD_CODE, "the app changed: reloading")
        server.reuse.clear()
        log.info("reloaded: %s", ", ".join(sorted(str(p) for p in changed)))


def open_recovery(options: ServeOptions, key: bytes) -> SessionRecovery | None:
    """The session store and recovery of a server with ``--session-store`` (None without one)."""
    url = options.session_store_url
    if not url:
        return None
    try:
        store = open_store(url)
    except Exception as exc:   # a damaged or unreachable store: serve without recovery, never crash
        log.error("session store %s cannot be used (%s: %s): sessions will not be recoverable by this process; "
                  "fix or delete the store file, or check the store server, then restart", redacted(url),
                  type(exc).__name__, exc)
        return None
    # A record outlives its process by about the unused-session lifetime (refreshed at every sweep meanwhile).
    ttl_s = (options.unused_session_lifetime_ms + 2 * options.check_unused_sessions_ms) / 1000
    log.info("session store: %s (records kept %.0f s after their process lets go)", store.description, ttl_s)
    return SessionRecovery(store, key, ttl_s)
