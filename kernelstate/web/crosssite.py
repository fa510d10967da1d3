"""Is a request a cross-site navigation? (For routes that start or run code on a GET.)

A signed-in user's cookies ride along on top-level navigations from any site,
so a link elsewhere can make a GET that runs code as that user. Such routes
answer a cross-site GET with a same-origin confirmation (a POST with an XSRF
token) instead of running anything.

A request is cross-site when the browser says so (``Sec-Fetch-Site:
cross-site`` or ``same-site``), or, from a browser that does not send
``Sec-Fetch-Site``, when its ``Origin`` or ``Referer`` names another host. A
typed URL or a bookmark (``Sec-Fetch-Site: none``), a same-origin link, and
clients that send none of these headers (scripts with a token) are not.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from tornado.httputil import HTTPServerRequest


def _host_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.netloc.lower() or None


def is_cross_site(request: HTTPServerRequest) -> bool:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site.strip().lower() not in ("same-origin", "none")
    own = (request.headers.get("X-Forwarded-Host") or request.host or "").split(",")[0].strip().lower()
    for header in ("Origin", "Referer"):
        value = request.headers.get(header)
        if value is None:
            continue
        if value.strip().lower() == "null" or _host_of(value) != own:
            return True
    return False
