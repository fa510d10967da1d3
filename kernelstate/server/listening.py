"""Listening: the standalone server's sockets, timeouts and accept loop.

Tornado's accept loop (``tornado.netutil.add_accept_handler``) lets an
``accept()`` error such as ``EMFILE`` escape into the event loop, which logs
a traceback and, the listening socket still being readable, calls it again at
once: at the descriptor limit a server spins at 100 % CPU and logs thousands
of tracebacks a second. :class:`Listener` accepts instead, and hands every
connection to the HTTPServer's public ``handle_stream``:

- on an ``accept()`` error (``EMFILE``, ``ENFILE``, ``ENOBUFS``...) it stops
  polling that socket for a pause that doubles up to ``MAX_PAUSE_S`` while the
  error lasts; new connections wait in the kernel's backlog meanwhile, and the
  timeouts below free descriptors held by idle ones. One log line per
  ``LOG_INTERVAL_S`` says so, with a count of what it did not log;
- a client address with ``max_per_client`` connections open (HTTP and
  WebSocket; IPv6 per /64; not on a Unix socket, whose one client is a proxy)
  has further connections closed at once, so one client cannot take every
  descriptor.

With ``--ssl-certfile`` the accepted socket is wrapped for TLS and its
handshake runs in the stream (:class:`CountedSSLStream`), as Tornado's own
accept loop does.

Timeouts (:func:`http_server`): a request's headers, a WebSocket upgrade's
included, must arrive within ``idle_connection_timeout_s`` of the connection
opening or of the previous response (a half-open or idle connection is
closed then); a body within ``body_timeout_s``; no route takes a body larger
than ``MAX_BODY_BYTES``. An open WebSocket is watched by the keep-alive
pings instead (``--keep-alive``).
"""
from __future__ import annotations

import errno
import functools
import logging
import math
import os
import socket
import ssl
import time
from collections import Counter
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, SSLIOStream
from tornado.netutil import bind_sockets, bind_unix_socket, ssl_wrap_socket
from tornado.web import Application

from ..errors import ConfigError
from ..web.limits import client_key

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]
from .options import ServeOptions

log = logging.getLogger(__name__)
ACCEPTS_PER_WAKEUP = 128   # as tornado's accept loop: other work gets a turn under a flood of connections
MIN_PAUSE_S = 0.05
MAX_PAUSE_S = 1.0
LOG_INTERVAL_S = 10.0
MAX_BODY_BYTES = 1024 * 1024


def http_server(app: Application, options: ServeOptions) -> HTTPServer:
    """The HTTPServer for ``app`` with the timeouts, body limit and TLS certificate of ``options``."""
    ssl_options = None
    if options.ssl_certfile and options.ssl_keyfile:
        ssl_options = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_options.load_cert_chain(options.ssl_certfile, options.ssl_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use --ssl-certfile {options.ssl_certfile!r} with --ssl-keyfile "
                              f"{options.ssl_keyfile!r}: {exc}") from None
    return HTTPServer(app, xheaders=options.use_xheaders, idle_connection_timeout=options.idle_connection_timeout_s,
                      body_timeout=options.body_timeout_s, max_body_size=MAX_BODY_BYTES, ssl_options=ssl_options)


def bind(options: ServeOptions) -> list[socket.socket]:
    """The listening sockets of ``options``: its Unix socket (owner-only), or its address and port."""
    if options.unix_socket:
        return [bind_unix_socket(options.unix_socket, mode=0o600)]
    family = socket.AF_INET if ":" not in options.address else socket.AF_UNSPEC
    return bind_sockets(options.port, options.address, family=family)


def descriptor_limit() -> str:
    """The process's descriptor limit, for messages (read when it is hit: nothing may be imported then)."""
    if resource is None:
        return "unknown"
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)


class RateLimitedLog:
    """At most one line per ``interval_s`` per key; the next line says how many were left out."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._state: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        last, left_out = self._state.get(key, (-math.inf, 0))
        if now - last < self.interval_s:
            self._state[key] = (last, left_out + 1)
            return
        if left_out:
            msg += f" ({left_out} more like this in the last {self.interval_s:.0f} s)"
        self.logger.warning(msg, *args)
        self._state[key] = (now, 0)


class _ReportsClose:
    """Mixed into an IOStream: call ``on_closed()`` once its socket is closed (HTTP or, after an upgrade, WebSocket)."""

    def __init__(self, sock: socket.socket, on_closed: Any, **kwargs: Any) -> None:
        self._on_closed = on_closed
        super().__init__(sock, **kwargs)  # type: ignore[call-arg]

    def close_fd(self) -> None:
        try:
            super().close_fd()  # type: ignore[misc]
        finally:
            callback, self._on_closed = self._on_closed, None
            if callback is not None:
                callback()


class CountedStream(_ReportsClose, IOStream):
    """An IOStream that reports when its socket is closed."""


class CountedSSLStream(_ReportsClose, SSLIOStream):
    """:class:`CountedStream` for a TLS connection (``--ssl-certfile``)."""


class Listener:
    """Accepts connections for ``http`` on its sockets; see the module docstring."""

    def __init__(self, http: HTTPServer, max_per_client: int) -> None:
        self.http = http
        self.max_per_client = max_per_client
        self.open_by_client: Counter[str] = Counter()
        self.refused_total = 0
        self.pauses_total = 0
        self._loop: IOLoop | None = None
        self._sockets: dict[int, socket.socket] = {}
        self._paused: dict[int, object] = {}
        self._pause_s = MIN_PAUSE_S
        self._log = RateLimitedLog(log, LOG_INTERVAL_S)

    @property
    def loop(self) -> IOLoop:
        if self._loop is None:
            self._loop = IOLoop.current()
        return self._loop

    def add_sockets(self, sockets: list[socket.socket]) -> None:
        for sock in sockets:
            sock.setblocking(False)
            self._sockets[sock.fileno()] = sock
            self.loop.add_handler(sock, self._on_readable, IOLoop.READ)

    def stop(self) -> None:
        """Stop accepting and close the listening sockets (open connections stay)."""
        loop = self.loop
        for fd, sock in self._sockets.items():
            timer = self._paused.pop(fd, None)
            if timer is not None:
                loop.remove_timeout(timer)
            else:
                loop.remove_handler(sock)
            sock.close()
        self._sockets.clear()

    # -- accepting ----------------------------------------------------------------
    def _on_readable(self, sock: socket.socket, events: int) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            if sock.fileno() not in self._sockets:
                return  # stopped
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue  # closed while still in the backlog
            except OSError as exc:
                self._pause(sock, exc)
                return
            self._pause_s = MIN_PAUSE_S
            self._admit(connection, address)

    def _pause(self, sock: socket.socket, exc: OSError) -> None:
        fd = sock.fileno()
        loop = self.loop
        loop.remove_handler(sock)
        delay, self._pause_s = self._pause_s, min(MAX_PAUSE_S, self._pause_s * 2)
        self._paused[fd] = loop.call_later(delay, self._resume, sock)
        self.pauses_total += 1
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        hint = ""
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            hint = (f"; the process may open {descriptor_limit()} files (ulimit -n): raise that, or lower "
                    "--max-connections-per-client / --idle-connection-timeout")
        self._log.warning(f"accept {code}", "cannot accept connections (%s: %s); new ones wait in the backlog, "
                          "accepting again in %.2f s%s", code, os.strerror(exc.errno or 0), delay, hint)

    def _resume(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self._paused.pop(fd, None) is not None and fd in self._sockets:
            self.loop.add_handler(sock, self._on_readable, IOLoop.READ)

    def _admit(self, connection: socket.socket, address: Any) -> None:
        client = client_key(address[0]) if connection.family in (socket.AF_INET, socket.AF_INET6) else None
        if client is not None and self.max_per_client:
            if self.open_by_client[client] >= self.max_per_client:
                self.refused_total += 1
                connection.close()
                self._log.warning(f"per-client {client}", "closed a new connection from %s: it has %d open, "
                                  "its limit (--max-connections-per-client)", client, self.max_per_client)
                return
            self.open_by_client[client] += 1
        try:
            counted: type[IOStream] = CountedStream
            if self.http.ssl_options is not None:   # the TLS handshake runs in the stream, off the accept loop
                connection = ssl_wrap_socket(connection, self.http.ssl_options, server_side=True,
                                             do_handshake_on_connect=False)
                counted = CountedSSLStream
            stream = counted(connection, functools.partial(self._closed, client),
                             max_buffer_size=self.http.max_buffer_size, read_chunk_size=self.http.read_chunk_size)
        except Exception:
            self._closed(client)
            connection.close()
            log.exception("cannot serve a connection from %s", client)
            return
        self.http.handle_stream(stream, address)

    def _closed(self, client: str | None) -> None:
        if client is None or client not in self.open_by_client:
            return
        self.open_by_client[client] -= 1
        if self.open_by_client[client] <= 0:
            del self.open_by_client[client]
