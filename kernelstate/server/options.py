"""ServeOptions: the one settings type shared by ``kernelstate serve`` and ``ks.serve``.

CLI flag names follow Bokeh and Panel (milliseconds for lifetimes, seconds
for the token expiration); they are converted here, once.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..auth import DEFAULT_COOKIE_EXPIRY_S
from ..auth.oauth_options import OAuthOptions, add_oauth_arguments
from ..errors import ConfigError
from ..limits import MessageLimits
from ..store.urls import ENV_VAR as STORE_ENV_VAR
from ..store.urls import check_store_url
from .authflags import add_auth_arguments, auth_options

DEFAULT_PORT = 5006
REFERRER_POLICIES = ("no-referrer", "no-referrer-when-downgrade", "origin", "origin-when-cross-origin",
                     "same-origin", "strict-origin", "strict-origin-when-cross-origin", "unsafe-url")


def _parse_static(items: Any) -> dict[str, str]:
    if isinstance(items, dict):
        return {str(k).strip("/"): str(v) for k, v in items.items()}
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, directory = str(item).partition("=")
        if not sep or not name.strip("/") or not directory:
            raise ConfigError(f"--static-dirs expects NAME=DIR; got {item!r}")
        out[name.strip("/")] = directory
    return out


@dataclass(frozen=True)
class ServeOptions:
    """Every server setting, validated in ``__post_init__``."""

    port: int = DEFAULT_PORT
    address: str = "127.0.0.1"
    prefix: str = ""
    show: bool = False
    autoreload: bool = False
    dev: bool = False
    num_threads: int | None = None
    unused_session_lifetime_ms: int = 15000
    check_unused_sessions_ms: int = 17000
    keep_alive_ms: int = 37000
    session_token_expiration_s: float = 300
    allow_websocket_origin: tuple[str, ...] = ()
    allow_host: tuple[str, ...] = ()
    use_xheaders: bool = False
    setup: str | None = None
    static_dirs: dict[str, str] = field(default_factory=dict)
    index: str | None = None
    log_level: str = "info"
    reuse_sessions: bool | str = False
    reuse_sessions_max_keys: int = 32
    warm: bool = False
    global_loading_spinner: bool = False
    max_sessions: int | None = None
    max_sessions_per_client: int | None = None  # None: half of max_sessions, or 100 without it; 0: no limit
    first_connect_timeout_s: float = 5.0
    idle_connection_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections_per_client: int = 128
    websocket_max_message_size: int = 20 * 1024 * 1024
    message_limits: MessageLimits = field(default_factory=MessageLimits)  # dict accepted
    secret_key: str | None = None
    title: str | None = None
    unix_socket: str | None = None
    frame_ancestors: tuple[str, ...] = ("'self'",)
    referrer_policy: str = "same-origin"
    session_store: str | None = None  # local, sqlite:///PATH or redis://HOST:PORT/DB (kernelstate.store.urls)
    dask_scheduler: str | None = None
    oauth: OAuthOptions | None = None  # a dict of its fields accepted
    basic_auth: str | None = None            # a USER:HASH file (or KERNELSTATE_BASIC_AUTH_PASSWORD)
    auth_cookie_expiry_s: float = DEFAULT_COOKIE_EXPIRY_S
    authorize: Any = None                    # "MODULE:FUNCTION" or a function (user_info, path) -> bool
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    stateless_pages: bool = False   # any process serves any request of a tab (web/anyproc.py); on with num_procs != 1
    num_procs: int = 1              # worker processes on one port (server/workers.py); 0: one per core
    drain_timeout_s: float = 0.0    # on SIGTERM, /readiness answers 503 and serving goes on this long

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be an int in 0..65535 (0 picks a free port); got {self.port!r}")
        prefix = self.prefix.strip("/")
        object.__setattr__(self, "prefix", f"/{prefix}" if prefix else "")
        for name in ("unused_session_lifetime_ms", "check_unused_sessions_ms", "keep_alive_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative number of milliseconds; got {value!r}")
        if self.check_unused_sessions_ms == 0:
            raise ConfigError("check_unused_sessions_ms must be > 0")
        if self.session_token_expiration_s <= 0:
            raise ConfigError(f"session_token_expiration_s must be > 0; got {self.session_token_expiration_s!r}")
        if self.num_threads is not None and self.num_threads < 0:
            raise ConfigError(f"num_threads must be >= 0; got {self.num_threads!r}")
        if self.reuse_sessions not in (True, False, "verify"):
            raise ConfigError(f"reuse_sessions must be True, False or 'verify'; got {self.reuse_sessions!r}")
        if self.reuse_sessions_max_keys < 1:
            raise ConfigError(f"reuse_sessions_max_keys must be >= 1; got {self.reuse_sessions_max_keys!r}")
        if self.max_sessions is not None and self.max_sessions < 1:
            raise ConfigError(f"max_sessions must be >= 1 or None; got {self.max_sessions!r}")
        if self.max_sessions_per_client is not None and self.max_sessions_per_client < 0:
            raise ConfigError("max_sessions_per_client must be >= 0 (0: no per-client limit) or None (the "
                              f"default); got {self.max_sessions_per_client!r}")
        if self.max_connections_per_client < 0:
            raise ConfigError("max_connections_per_client must be >= 0 (0: no per-client limit); "
                              f"got {self.max_connections_per_client!r}")
        if self.first_connect_timeout_s < 0:
            raise ConfigError(f"first_connect_timeout_s must be >= 0 seconds (0: no window); got {self.first_connect_timeout_s!r}")
        for name in ("idle_connection_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0 seconds; got {getattr(self, name)!r}")
        if self.num_procs < 0:
            raise ConfigError(f"num_procs must be >= 0 (0: one per core); got {self.num_procs!r}")
        if self.num_procs != 1 and not hasattr(os, "fork"):
            raise ConfigError("--num-procs needs os.fork, which this platform lacks; run one process per port "
                              "with --stateless-pages behind a load balancer instead")
        if self.num_procs != 1 and self.unix_socket:
            raise ConfigError("--num-procs needs a TCP port; it cannot be used with --unix-socket")
        if self.drain_timeout_s < 0:
            raise ConfigError(f"drain_timeout_s must be >= 0 seconds; got {self.drain_timeout_s!r}")
        if self.log_level not in ("trace", "debug", "info", "warning", "error", "critical"):
            raise ConfigError(f"log_level must be debug, info, warning, error or critical; got {self.log_level!r}")
        object.__setattr__(self, "allow_websocket_origin", tuple(self.allow_websocket_origin))
        ancestors = (self.frame_ancestors,) if isinstance(self.frame_ancestors, str) else tuple(self.frame_ancestors)
        if not ancestors or any(not a or any(c in a for c in ";,\r\n") for a in ancestors):
            raise ConfigError(f"frame_ancestors must be CSP sources such as \"'self'\", \"'none'\" or "
                              f"https://portal.example.org; got {self.frame_ancestors!r}")
        object.__setattr__(self, "frame_ancestors", ancestors)
        if self.referrer_policy not in REFERRER_POLICIES:
            raise ConfigError(f"referrer_policy must be one of {', '.join(REFERRER_POLICIES)}; got {self.referrer_policy!r}")
        object.__setattr__(self, "message_limits", MessageLimits.coerce(self.message_limits))
        object.__setattr__(self, "oauth", OAuthOptions.coerce(self.oauth))
        object.__setattr__(self, "allow_host", tuple(self.allow_host))
        # Imported here: hosts.py needs tornado, which the CLI's argument parser does not load.
        from .hosts import HostAllowlist

        try:
            HostAllowlist.parse([*self.allow_host, *self.allow_websocket_origin])
        except ValueError as exc:
            raise ConfigError(f"{exc} (in allow_host / allow_websocket_origin)") from None
        object.__setattr__(self, "static_dirs", _parse_static(self.static_dirs))
        for name, directory in self.static_dirs.items():
            if not Path(directory).is_dir():
                raise ConfigError(f"static dir for {name!r} does not exist: {directory!r}")
        if not self.auth_cookie_expiry_s > 0:
            raise ConfigError(f"auth_cookie_expiry must be > 0 seconds; got {self.auth_cookie_expiry_s!r}")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("--ssl-certfile and --ssl-keyfile go together; got only "
                              f"{'--ssl-certfile' if self.ssl_certfile else '--ssl-keyfile'}")
        for name in ("ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise ConfigError(f"--{name.replace('_', '-')} {value!r}: no such file")
        if self.session_store is not None:
            check_store_url(self.session_store)
        if self.setup is not None and not Path(self.setup).is_file():
            raise ConfigError(f"--setup script not found: {self.setup!r}")
        from ..cluster.coordinator import check_store

        check_store(self.session_store, self.secret)

    @property
    def session_store_url(self) -> str | None:
        """The session store: ``KERNELSTATE_SESSION_STORE`` (which may carry a password) or ``session_store``."""
        return os.environ.get(STORE_ENV_VAR) or self.session_store

    @property
    def stateless(self) -> bool:
        """Whether pages are stateless (explicitly, or because several workers share the port)."""
        return self.stateless_pages or self.num_procs != 1

    @property
    def secret(self) -> str | None:
        return self.secret_key or os.environ.get("KERNELSTATE_SECRET_KEY") or None

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ServeOptions:
        """Build from ``ks.serve`` keywords; unknown names get a clear error."""
        names = {f.name for f in fields(cls)}
        aliases = {"websocket_origin": "allow_websocket_origin", "threads": "num_threads", "nthreads": "num_threads"}
        clean: dict[str, Any] = {}
        for key, value in kwargs.items():
            key = aliases.get(key, key)
            if key not in names:
                raise ConfigError(f"unknown server option {key!r}; valid options are: {', '.join(sorted(names))}")
            if key in ("allow_websocket_origin", "allow_host") and isinstance(value, str):
                value = (value,)
            clean[key] = value
        if clean.get("num_procs", 1) != 1:
            raise ConfigError(f"num_procs={clean['num_procs']!r}: worker processes are for `kernelstate serve "
                              "--num-procs N`, which forks the command's process; from Python, run one server per "
                              "process with stateless_pages=True (and a shared KERNELSTATE_SECRET_KEY)")
        return cls(**clean)

    @classmethod
    def from_argv(cls, ns: argparse.Namespace) -> ServeOptions:
        reuse: bool | str = "verify" if ns.reuse_sessions_verify else bool(ns.reuse_sessions)
        return cls(
            port=ns.port, address=ns.address, prefix=ns.prefix or "", show=ns.show,
            autoreload=ns.autoreload or ns.dev, dev=ns.dev, num_threads=ns.num_threads,
            unused_session_lifetime_ms=ns.unused_session_lifetime,
            check_unused_sessions_ms=ns.check_unused_sessions, keep_alive_ms=ns.keep_alive,
            session_token_expiration_s=ns.session_token_expiration,
            allow_websocket_origin=tuple(ns.allow_websocket_origin or ()), allow_host=tuple(ns.allow_host or ()),
            use_xheaders=ns.use_xheaders, setup=ns.setup,
            static_dirs=_parse_static(ns.static_dirs), index=ns.index, log_level=ns.log_level,
            reuse_sessions=reuse,
            reuse_sessions_max_keys=ns.reuse_sessions_max_keys, warm=ns.warm,
            global_loading_spinner=ns.global_loading_spinner, max_sessions=ns.max_sessions,
            max_sessions_per_client=ns.max_sessions_per_client, first_connect_timeout_s=ns.first_connect_timeout,
            idle_connection_timeout_s=ns.idle_connection_timeout, body_timeout_s=ns.body_timeout,
            max_connections_per_client=ns.max_connections_per_client,
            websocket_max_message_size=ns.websocket_max_message_size, title=ns.title,
            message_limits=MessageLimits.parse(ns.message_limit or ()),
            unix_socket=ns.unix_socket,
            frame_ancestors=tuple(ns.frame_ancestors or ("'self'",)), referrer_policy=ns.referrer_policy,
            session_store=_store_from_argv(ns.session_store), dask_scheduler=ns.dask_scheduler,
            oauth=OAuthOptions.from_argv(ns),
            stateless_pages=ns.stateless_pages, num_procs=ns.num_procs, drain_timeout_s=ns.drain_timeout,
            **auth_options(ns),
        )


def _store_from_argv(url: str | None) -> str | None:
    from ..cluster.coordinator import check_url

    return None if url is None else check_url(url, from_argv=True)


_REUSE_VALUES = {"verify": "--reuse-sessions-verify", "true": "--reuse-sessions", "True": "--reuse-sessions"}


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Rewrite the value spellings of ``--reuse-sessions`` to its two switches.

    ``--reuse-sessions`` is a switch, so ``--reuse-sessions app.py`` keeps the
    path as an APP. The documented ``--reuse-sessions verify`` (and
    ``--reuse-sessions=verify``, ``--reuse-sessions true``) still work: they
    become ``--reuse-sessions-verify`` (or ``--reuse-sessions``) here, before
    parsing. Everything after ``--`` is left alone.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg.startswith("--reuse-sessions="):
            value = arg.partition("=")[2]
            if value not in _REUSE_VALUES:
                raise ConfigError(f"--reuse-sessions takes no value or 'verify'; got {value!r} "
                                  "(use --reuse-sessions or --reuse-sessions-verify)")
            out.append(_REUSE_VALUES[value])
        elif arg == "--reuse-sessions" and i + 1 < len(argv) and argv[i + 1] in _REUSE_VALUES:
            out.append(_REUSE_VALUES[argv[i + 1]])
            i += 1
        else:
            out.append(arg)
        i += 1
    return out


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``kernelstate serve`` flags (parsed into ServeOptions by from_argv)."""
    d = ServeOptions()
    a = parser.add_argument
    a("apps", nargs="+", metavar="APP", help="a .py script, an .ipynb notebook, or a directory of them")
    a("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free port)")
    a("--address", default=d.address, help="address to bind (default 127.0.0.1; use 0.0.0.0 to accept remote clients)")
    a("--prefix", default="", help="URL prefix to serve under, e.g. /dash (for reverse proxies)")
    a("--show", action="store_true", help="open the first app in a web browser")
    a("--autoreload", action="store_true", help="reload open pages when an app's files change")
    a("--dev", action="store_true", help="development mode: --autoreload, and tracebacks on error pages")
    a("--num-threads", type=int, default=None, metavar="N", help="thread pool size for execute(schedule='thread') and threaded onload/tasks")
    a("--unused-session-lifetime", type=int, default=d.unused_session_lifetime_ms, metavar="MS", help="how long a session without connections is kept, in ms (default 15000)")
    a("--check-unused-sessions", type=int, default=d.check_unused_sessions_ms, metavar="MS", help="how often unused sessions are checked for expiry, in ms (default 17000)")
    a("--keep-alive", type=int, default=d.keep_alive_ms, metavar="MS", help="WebSocket ping interval in ms; a client that does not answer is closed (default 37000; 0 disables)")
    a("--session-token-expiration", type=float, default=d.session_token_expiration_s, metavar="S", help="seconds a page's token stays valid for its first connection (default 300)")
    a("--allow-websocket-origin", action="append", metavar="HOST[:PORT]", help="allow WebSocket connections from this origin (repeatable; default: this server's own host:port)")
    a("--allow-host", action="append", metavar="HOST[:PORT]", help="also answer requests whose Host is HOST[:PORT] "
      "and take WebSockets from pages served under it (repeatable; HOST:* any port; '*' any host). Default: the "
      "names and addresses the server listens on, plus --allow-websocket-origin entries; other hosts get 403")
    a("--use-xheaders", action="store_true", help="behind a reverse proxy: take the client address and scheme from "
      "X-Forwarded-For/-Proto, and check the host in X-Forwarded-Host (the proxy must set it) instead of Host")
    a("--setup", metavar="SCRIPT", help="a Python script run once at startup (e.g. to schedule_task or "
      "on_session_created); with --num-procs, once in each worker process")
    a("--static-dirs", nargs="*", metavar="NAME=DIR", help="serve DIR at /NAME/")
    a("--index", metavar="PAGE", help="the app (name) to serve at /, or a Jinja2 .html template for the index")
    a("--log-level", default="info", choices=["debug", "info", "warning", "error", "critical"], help="logging level (default info)")
    a("--reuse-sessions", action="store_true", help="serve the rendered page from a cache keyed by session_key_func (default: the app path)")
    a("--reuse-sessions-verify", action="store_true", help="like --reuse-sessions, and also render every cache hit fresh and report differences (also spelled --reuse-sessions verify)")
    a("--reuse-sessions-max-keys", type=int, default=d.reuse_sessions_max_keys, metavar="N", help="bound of the reuse cache (LRU, default 32)")
    a("--warm", action="store_true", help="run every app once at startup, before the port opens (and cache its page with --reuse-sessions)")
    a("--global-loading-spinner", action="store_true", help="show a loading overlay until the session's page has rendered")
    a("--max-sessions", type=int, default=None, metavar="N", help="refuse new sessions beyond N with 503 (default: no limit)")
    a("--max-sessions-per-client", type=int, default=None, metavar="N", help="refuse a client address more than N sessions at once with 503 (default: half of --max-sessions, or 100 without it; 0: no limit)")
    a("--first-connect-timeout", type=float, default=d.first_connect_timeout_s, metavar="S", help="a session whose page has not connected within S seconds releases its slot; a later WebSocket with a valid token gets it recreated (default 5; 0: no window)")
    a("--idle-connection-timeout", type=float, default=d.idle_connection_timeout_s, metavar="S", help="close an HTTP connection that takes longer than S seconds to send a request's headers, or idles that long between requests (default 10)")
    a("--body-timeout", type=float, default=d.body_timeout_s, metavar="S", help="close an HTTP connection that takes longer than S seconds to send a request body (default 30)")
    a("--max-connections-per-client", type=int, default=d.max_connections_per_client, metavar="N", help="close connections from a client address beyond N open at once (default 128; 0: no limit)")
    a("--websocket-max-message-size", type=int, default=d.websocket_max_message_size, metavar="BYTES", help="largest WebSocket message accepted (default 20 MiB)")
    a("--message-limit", action="append", metavar="NAME=N", help=f"bound the work one client message may cause; NAME is values, depth, models (new models, weighted by the sub-models each builds) or references (repeatable; defaults {MessageLimits().to_json()})")
    a("--title", default=None, help="default page title")
    a("--frame-ancestors", action="append", metavar="SOURCE", help="who may show the pages in a frame: CSP frame-ancestors sources, repeatable (default 'self'; 'none' forbids every frame)")
    a("--referrer-policy", default=d.referrer_policy, choices=REFERRER_POLICIES, help="the Referrer-Policy pages are sent with (default same-origin)")
    a("--session-store", default=None, metavar="URL", help="keep sessions recoverable in a store: 'local' (SQLite in the "
      "runtime folder, for restarts and --num-procs), sqlite:///PATH, or redis://HOST:PORT/DB (several machines); a "
      f"URL with a password only in the environment variable {STORE_ENV_VAR}")
    a("--num-procs", type=int, default=d.num_procs, metavar="N", help="serve with N worker processes on the one port "
      "(0: one per CPU core); a worker that dies is restarted; implies --stateless-pages (default 1)")
    a("--stateless-pages", action="store_true", help="any process may serve any request of a tab: the page's token "
      "carries the page's path and query arguments, and the session is created where its WebSocket connects "
      "(for several processes behind a load balancer; they must share KERNELSTATE_SECRET_KEY)")
    a("--drain-timeout", type=float, default=d.drain_timeout_s, metavar="S", help="on SIGTERM, answer /readiness "
      "with 503 and keep serving for S seconds (so a load balancer stops sending new tabs), then stop (default 0)")
    a("--unix-socket", default=None, metavar="PATH", help="listen on this Unix socket instead of a TCP port (e.g. behind jupyter-server-proxy); "
      "the proxy must send Host: localhost, 127.0.0.1 or [::1] (any port), or a name given with --allow-host")
    a("--dask-scheduler", default=None, metavar="ADDRESS", help="the Dask scheduler for ks.state.execute(fn, "
      "schedule='dask'), e.g. tcp://127.0.0.1:8786")
    add_oauth_arguments(parser)
    add_auth_arguments(parser)
