"""The reuse cache (``--reuse-sessions``): rendered pages by key, never sessions.

The first request for a key renders its own session normally; the page HTML
(with the token left as a placeholder) is then cached under the key. Later
requests with that key get the cached HTML at once with a fresh signed token
for a *new* session, whose app code runs for that request when its WebSocket
connects. No visitor's session is pinned, shared or kept alive by the cache.

Safety:
- the cache is an LRU bounded by ``max_keys``;
- while the first render runs, the session's one
  :class:`~kernelstate.request.RecordedRequest` records every request value
  the app read (``ks.state.session_args[...]``, ``headers``, ``cookies``,
  ``request.path``, ``user``, ...). For args, headers, cookies and the path,
  the key function is probed with a request where only that value differs; if
  the key does not change, the page may depend on a value the key ignores: a
  warning names it, suggests a key function built from exactly the values
  read, and the page is not cached. ``user``, ``request.url``,
  ``request.remote_ip`` and the whole record (``request.snapshot()``) cannot
  be probed: a key function covers them only by declaring them, e.g.
  ``key_func.depends = {"user"}``. Behind a login the key includes the
  signed-in user, so pages are cached per user and reads of ``user`` and
  ``user_info`` are covered;
  reads count wherever they happen during the first render, also in
  ``on_session_created`` hooks; a hook that only needs to look (auditing,
  logging) reads ``session.request.audit()``, which is not recorded;
- ``verify`` mode renders a fresh page for cache hits too and records any
  difference from the cached one in ``differences`` (and the log).
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from .loading import PageSpec

log = logging.getLogger(__name__)
PROBE = "__kernelstate_probe__"


def default_session_key(request: HTTPServerRequest) -> Hashable:
    """The default key: the request path, nothing else."""
    return request.path


@dataclass(frozen=True)
class UserKey:
    """The signed-in user's part of a reuse key."""

    name: str


@dataclass(frozen=True)
class CachedPage:
    html: str            # with page.TOKEN_PLACEHOLDER where the token goes
    spec: PageSpec


DECLARED_ONLY = frozenset({"user", "user_info", "access_token", "request", "url", "remote_ip"})  # cannot be probed
USER_READS = frozenset({"user", "user_info"})  # covered when the key includes the signed-in user


def _label(kind: str, name: str | None) -> str:
    shown = {"args": "session_args"}.get(kind, kind)
    if kind in ("user", "request"):
        return f"ks.state.{shown}"
    if kind in ("path", "url", "remote_ip"):
        return f"ks.state.request.{kind}"
    return f"ks.state.{shown}[{name!r}]" if name is not None else f"ks.state.{shown} (iterated)"


def make_request(uri: str, headers: HTTPHeaders | None = None, method: str = "GET",
                 version: str = "HTTP/1.1") -> HTTPServerRequest:
    """A server-side request object built the supported way (a start line; the host in the headers)."""
    headers = headers if headers is not None else HTTPHeaders()
    if "Host" not in headers:
        headers["Host"] = "127.0.0.1"
    return HTTPServerRequest(start_line=RequestStartLine(method, uri, version), headers=headers)


def _perturbed(request: HTTPServerRequest, kind: str, name: str | None) -> HTTPServerRequest:
    headers = HTTPHeaders()
    for key, value in request.headers.get_all():
        headers.add(key, value)
    uri = request.uri or "/"
    if kind == "path":
        query = request.uri.partition("?")[2] if request.uri else ""
        uri = request.path.rstrip("/") + "/" + PROBE + ("?" + query if query else "")
    elif kind == "args":
        args = {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in request.query_arguments.items()}
        args[name or PROBE] = [PROBE]
        uri = request.path + "?" + urlencode(args, doseq=True)
    elif kind == "path":
        uri = request.path.rstrip("/") + "/" + PROBE + ("?" + request.query if request.query else "")
    elif kind == "headers":
        if name is None or name.lower() == "cookie":
            headers.add("X-Kernelstate-Probe", PROBE)
        else:
            headers[name] = PROBE
    elif kind == "cookies":
        cookies = SimpleCookie()
        for key, morsel in request.cookies.items():
            cookies[key] = morsel.value
        cookies[name or PROBE] = PROBE
        headers["Cookie"] = "; ".join(f"{k}={m.value}" for k, m in cookies.items())
    if "Host" not in headers:
        headers["Host"] = request.host
    return make_request(uri, headers, request.method or "GET", request.version)


def suggested_key(reads: list[tuple[str, str | None]]) -> str:
    """A ``session_key_func`` covering exactly the request values in ``reads`` (for the warning)."""
    parts = ["r.path"]
    depends: list[str] = []
    for kind, name in reads:
        if kind == "args" and name is not None:
            parts.append(f"r.query_arguments.get({name!r}, [b''])[0]")
        elif kind == "args":
            parts.append("r.query")
        elif kind == "headers" and name is not None:
            parts.append(f"r.headers.get({name!r})")
        elif kind == "headers":
            parts.append("tuple(sorted(r.headers.get_all()))")
        elif kind == "cookies" and name is not None:
            parts.append(f"r.cookies[{name!r}].value if {name!r} in r.cookies else None")
        elif kind == "cookies":
            parts.append("r.headers.get('Cookie')")
        elif kind == "path":
            continue  # r.path is always part of the suggestion
        elif kind in DECLARED_ONLY:
            depends.append(kind)
    key = "def key(r):\n    return (" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")\n"
    if depends:
        key += f"key.depends = {set(depends)!r}  # only if key() really tells those apart\n"
    return key + "ks.extension(session_key_func=key)"


def uncovered_reads(reads: set[tuple[str, str | None]], key_func: Callable[[Any], Hashable],
                    request: HTTPServerRequest) -> list[str]:
    """Request values the app read that ``key_func`` does not distinguish."""
    return [_label(kind, name) for kind, name in _uncovered(reads, key_func, request)]


def _uncovered(reads: set[tuple[str, str | None]], key_func: Callable[[Any], Hashable],
               request: HTTPServerRequest) -> list[tuple[str, str | None]]:
    declared = set(getattr(key_func, "depends", ()) or ())
    base = key_func(request)
    missing: list[tuple[str, str | None]] = []
    for kind, name in sorted(reads, key=lambda r: (r[0], r[1] or "")):
        if kind in DECLARED_ONLY:
            if kind not in declared:
                missing.append((kind, name))
            continue
        try:
            changed = key_func(_perturbed(request, kind, name)) != base
        except Exception:
            changed = False
        if not changed:
            missing.append((kind, name))
    return missing


class ReuseCache:
    """LRU of rendered pages keyed by ``(app route, session_key_func(request))``."""

    def __init__(self, max_keys: int = 32, verify: bool = False) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1; got {max_keys!r}")
        self.max_keys = max_keys
        self.verify = verify
        self._pages: OrderedDict[Hashable, CachedPage] = OrderedDict()
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()
        self.differences: list[str] = []
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._pages)

    def key(self, route: str, key_func: Callable[[Any], Hashable] | None, request: HTTPServerRequest,
            user: str | None = None) -> Hashable | None:
        """The cache key, or None when the key function failed (render uncached).

        Behind a login the signed-in ``user`` is part of the key: pages are cached per user.
        """
        func = key_func or default_session_key
        try:
            key = func(request)
            hash(key)
        except Exception:
            self._warn_once(route, "key", "session_key_func raised for %s; serving an uncached page (logged once per app)", route, exc_info=True)
            return None
        return (route, key) if user is None else (route, key, UserKey(user))

    def get(self, key: Hashable) -> CachedPage | None:
        with self._lock:
            page = self._pages.get(key)
            if page is None:
                self.misses += 1
                return None
            self._pages.move_to_end(key)
            self.hits += 1
            return page

    def consider(self, key: Hashable, route: str, key_func: Callable[[Any], Hashable] | None,
                 request: HTTPServerRequest, reads: set[tuple[str, str | None]], page: CachedPage) -> bool:
        """Cache ``page`` under ``key`` unless the render read a value the key ignores."""
        func = key_func or default_session_key
        if isinstance(key, tuple) and isinstance(key[-1], UserKey):
            reads = {r for r in reads if r[0] not in USER_READS}
        try:
            missing = _uncovered(reads, func, request) if reads else []
        except Exception:
            self._warn_once(route, "probe", "not caching the page of %s: the session_key_func failed while "
                            "probing the request values the app read", route, exc_info=True)
            return False
        if missing:
            labels = ", ".join(_label(kind, name) for kind, name in missing)
            self._warn_once(
                route, labels,
                "not caching the page of %s: its first render read %s (in app code or an on_session_created "
                "hook), but the reuse key ignores it, so another user could see this user's page. Use a "
                "session_key_func that includes it, for example:\n%s\n(A hook that only needs to look at the "
                "request reads session.request.audit(), which does not count.)",
                route, labels, suggested_key(missing),
            )
            return False
        with self._lock:
            self._pages[key] = page
            self._pages.move_to_end(key)
            while len(self._pages) > self.max_keys:
                self._pages.popitem(last=False)
        return True

    def compare(self, route: str, cached: PageSpec, fresh: PageSpec) -> list[str]:
        """Verify mode: report how a fresh render differs from the cached page."""
        diffs = []
        if cached.title != fresh.title:
            diffs.append(f"{route}: title differs: cached {cached.title!r}, fresh {fresh.title!r}")
        if cached.template_name != fresh.template_name:
            diffs.append(f"{route}: template differs: cached {cached.template_name!r}, fresh {fresh.template_name!r}")
        if [a for _, a in cached.roots] != [a for _, a in fresh.roots]:
            diffs.append(f"{route}: roots differ: cached {len(cached.roots)} {[a for _, a in cached.roots]}, fresh {len(fresh.roots)} {[a for _, a in fresh.roots]}")
        if cached.raw_css != fresh.raw_css:
            diffs.append(f"{route}: raw_css differs")
        for diff in diffs:
            log.warning("reuse-sessions verify: %s", diff)
        self.differences.extend(diffs)
        return diffs

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._pages.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()

    def _warn_once(self, route: str, what: str, msg: str, *args: Any, exc_info: bool = False) -> None:
        if (route, what) in self._warned:
            return
        self._warned.add((route, what))
        log.warning(msg, *args, exc_info=exc_info)
