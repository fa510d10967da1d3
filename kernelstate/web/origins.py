"""Exact WebSocket Origin matching.

An allowlist entry is ``host`` or ``host:port``; an entry without a port
matches the scheme's default port (80 for http, 443 for https). Hosts are
compared label for label, whole: ``localhost.evil.net`` never matches
``localhost``. ``null`` and ``file://`` origins never match. A request
without an Origin header (not a browser) is not subject to the check.
"""
from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def parse_origin(origin: str) -> tuple[str, int] | None:
    """``(host, port)`` of an Origin header value, or None if it cannot match anything."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.username or parts.password or parts.query or parts.fragment:
        return None
    return parts.hostname.lower().rstrip("."), port if port is not None else _DEFAULT_PORTS[parts.scheme]


def parse_entry(entry: str) -> tuple[str, int | None]:
    entry = entry.strip().lower()
    if "://" in entry:
        parsed = parse_origin(entry)
        if parsed is None:
            raise ValueError(f"invalid origin allowlist entry {entry!r}; use HOST or HOST:PORT")
        return parsed
    host, sep, port = entry.rpartition(":") if entry.count(":") == 1 or entry.startswith("[") else ("", "", "")
    if sep and port.isdigit():
        return host.strip("[]").rstrip("."), int(port)
    return entry.strip("[]").rstrip("."), None


def origin_allowed(origin: str, allowlist: list[str] | tuple[str, ...]) -> bool:
    parsed = parse_origin(origin)
    if parsed is None:
        return False
    host, port = parsed
    for entry in allowlist:
        ehost, eport = parse_entry(entry)
        if ehost == "*" and (eport is None or eport == port):
            return True
        if ehost != host:
            continue
        if eport is None:
            scheme = urlsplit(origin.strip()).scheme
            if port == _DEFAULT_PORTS.get(scheme):
                return True
        elif eport == port:
            return True
    return False


def default_allowlist(address: str, port: int) -> list[str]:
    """This server's own host:port under its usual names."""
    names = {"localhost", "127.0.0.1", "[::1]"}
    if address not in ("0.0.0.0", "::", ""):
        names.add(address)
    return [f"{name}:{port}" for name in sorted(names)]
