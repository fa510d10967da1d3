"""Host header checking: the standalone server answers only to its own names.

DNS rebinding: a page at ``http://evil.example:PORT`` whose name the attacker
then points at 127.0.0.1 is, to the browser, the same origin as this server.
It could read our pages (and their session tokens) and open WebSockets with
``Origin`` equal to ``Host``. What the browser cannot forge is the name in
``Host``: it is always the name the page was loaded from. So every request,
on every route (pages, index, static files, liveness, WebSockets, 404s), must
name one of this server's hosts, or it is answered 403 before any handler runs.

Allowlist entries:

- ``HOST:PORT``: that host on that port;
- ``HOST``: that host on the request scheme's default port (a ``Host`` header
  without a port, or with ``:80`` on http, ``:443`` on https);
- ``HOST:*``: that host on any port (a Unix-socket server: the port in
  ``Host`` is whatever its proxy says);
- ``*`` (any host) and ``*:PORT``: only when given explicitly.

Hosts are compared whole and case-insensitively (``localhost.evil.example``
never matches ``localhost``); IPv6 literals are written ``[::1]``. With
``--use-xheaders`` the first ``X-Forwarded-Host`` value, when there is one, is
the host checked (the proxy in front must set it, overwriting the client's).

The allowlist is immutable and read on the server's loop only.
"""
from __future__ import annotations

import functools
import html
import logging
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tornado import web
from tornado.httputil import HTTPServerRequest
from tornado.routing import Matcher, Rule

from ..web.origins import parse_entry

log = logging.getLogger(__name__)
ANY_PORT = -1
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]{0,252})$")
_IPV6 = re.compile(r"^[0-9a-f:.]{2,45}$")


def split_host(value: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a ``Host`` header value; None if it is not a well-formed host.

    The name is lower-cased, without a trailing dot, and an IPv6 literal
    without its brackets; the port is None when the header names none.
    """
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or not _IPV6.match(name):
            return None
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            return None
    else:
        name, sep, port_text = value.partition(":")
        if not sep:
            port_text = None
        name = name.rstrip(".")
        if not _NAME.match(name):
            return None
    if port_text is None:
        return name, None
    if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
        return None
    return name, int(port_text)


@dataclass(frozen=True)
class HostAllowlist:
    """The hosts a server answers to: ``(name, port)`` pairs; port None is the scheme's default."""

    entries: frozenset[tuple[str, int | None]]

    @classmethod
    def parse(cls, items: Iterable[str]) -> HostAllowlist:
        """From ``HOST``, ``HOST:PORT``, ``HOST:*``, ``*``, ``*:PORT`` or ``scheme://host[:port]`` strings.

        Raises:
            ValueError: an entry that is not a host, naming it.
        """
        entries: set[tuple[str, int | None]] = set()
        for item in items:
            text = item.strip().lower()
            port: int | None
            if text.endswith(":*"):
                name, port = text[:-2].strip("[]"), ANY_PORT
            elif text.startswith("*"):
                name, port = "*", (int(text[2:]) if text[1:2] == ":" and text[2:].isdigit() else ANY_PORT)
                if text not in ("*", f"*:{port}"):
                    raise ValueError(f"invalid allowed host {item!r}; use HOST, HOST:PORT, HOST:* or *")
            else:
                name, port = parse_entry(text)
            if name != "*" and split_host(name if ":" not in name else f"[{name}]") is None:
                raise ValueError(f"invalid allowed host {item!r}; use HOST, HOST:PORT, HOST:* or *")
            entries.add((name.rstrip("."), port))
        return cls(frozenset(entries))

    def allows(self, host: str, scheme: str = "http") -> bool:
        """Whether a request whose ``Host`` is ``host`` (over ``scheme``) may be answered."""
        parsed = split_host(host)
        if parsed is None:
            return False
        name, port = parsed
        default = _DEFAULT_PORTS.get(scheme, 80)
        effective = default if port is None else port
        for ename, eport in self.entries:
            if ename not in ("*", name):
                continue
            if eport == ANY_PORT or effective == (default if eport is None else eport):
                return True
        return False

    def describe(self) -> str:
        """The entries, for log lines and messages."""
        def one(name: str, port: int | None) -> str:
            shown = f"[{name}]" if ":" in name else name
            return shown if port is None else f"{shown}:{'*' if port == ANY_PORT else port}"

        return ", ".join(sorted(one(n, p) for n, p in self.entries)) or "(none)"


@functools.cache
def machine_hosts() -> frozenset[str]:
    """This machine's names and the addresses they resolve to, plus its primary outbound address.

    Looked up once per process (name resolution can be slow where DNS is).
    """
    names = {socket.gethostname(), socket.getfqdn()}
    found = {n.lower() for n in names if n}
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except OSError:
            continue
        for info in infos:
            address = str(info[4][0]).split("%", 1)[0]
            found.add(f"[{address}]" if ":" in address else address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))   # TEST-NET: chooses the route, sends nothing
            found.add(str(sock.getsockname()[0]))
        except OSError:
            pass
    return frozenset(found)


def listening_hosts(address: str, port: int, unix_socket: bool = False) -> list[str]:
    """The names and addresses a server listening on ``address:port`` is reached by.

    Always the loopback names; the address itself; for a wildcard address
    (``0.0.0.0``, ``::``) also this machine's names and addresses. A Unix-socket
    server is reached only through a local proxy, which sends the Host it
    likes: the loopback names on any port.
    """
    if unix_socket:
        return [f"{name}:*" for name in LOOPBACK_NAMES]
    names = set(LOOPBACK_NAMES)
    if address in WILDCARD_ADDRESSES:
        names |= machine_hosts()
    else:
        names.add(f"[{address}]" if ":" in address and not address.startswith("[") else address)
    return [f"{name}:{port}" for name in sorted(names)]


def request_host(request: HTTPServerRequest, xheaders: bool) -> str:
    """The host a request is checked by: its ``Host``, or (``xheaders``) the first ``X-Forwarded-Host``."""
    if xheaders:
        forwarded = request.headers.get("X-Forwarded-Host", "").split(",", 1)[0].strip()
        if forwarded:
            return forwarded
    return request.headers.get("Host", "")


class ForeignHostMatcher(Matcher):
    """Matches every request whose host is not on the allowlist (any path, any method)."""

    def __init__(self, allowlist: Callable[[], HostAllowlist], xheaders: bool) -> None:
        self.allowlist = allowlist
        self.xheaders = xheaders

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        allowed = self.allowlist().allows(request_host(request, self.xheaders), request.protocol)
        return None if allowed else {}


ALLOW_HOST_HINT = "start the server with --allow-host {host}"


def host_check_rule(allowlist: Callable[[], HostAllowlist], xheaders: bool = False,
                    hint: str = ALLOW_HOST_HINT) -> Rule:
    """The first rule of a server's routes: a foreign host gets :class:`HostRefusedHandler`, whatever the path.

    ``allowlist`` is called per request (a server knows its port only once it listens); ``hint``
    says how to allow a host (``{host}`` is replaced by the refused one).
    """
    return Rule(ForeignHostMatcher(allowlist, xheaders), HostRefusedHandler,
                {"allowlist": allowlist, "xheaders": xheaders, "hint": hint})


class HostRefusedHandler(web.RequestHandler):
    """403 for any method: a short page naming the refused host (never the allowed ones)."""

    def initialize(self, allowlist: Callable[[], HostAllowlist], xheaders: bool, hint: str) -> None:
        self.allowlist = allowlist
        self.xheaders = xheaders
        self.hint = hint

    def prepare(self) -> None:
        shown = request_host(self.request, self.xheaders)[:100]
        hint = self.hint.format(host=shown or "HOST[:PORT]")
        log.warning("refused %s %s: Host %r is not one of this server's hosts (%s); if it should be, %s",
                    self.request.method, self.request.path[:200], shown, self.allowlist().describe(), hint)
        self.set_status(403, "Host not allowed")
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>403 Host not allowed</title>"
                    "</head><body><h1>403: Host not allowed</h1>"
                    f"<p>This server does not answer to the host name <code>{html.escape(shown or '(none)')}</code>.</p>"
                    f"<p>If you run this server and reach it by that name on purpose: {html.escape(hint)}.</p>"
                    "</body></html>\n")
