"""The ``kernelstate`` command line: ``kernelstate serve APP...``, ``kernelstate export NOTEBOOK``, ``kernelstate hash-password``."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import os
import signal
import socket
import sys
import webbrowser
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from .loading import AppSpec
    from .server.options import ServeOptions
    from .server.server import Server


def build_parser() -> argparse.ArgumentParser:
    from .server.options import add_serve_arguments

    parser = argparse.ArgumentParser(
        prog="kernelstate",
        description="kernelstate: session-backed interactive apps, served standalone, in Jupyter, or from a kernel.",
    )
    parser.add_argument("--version", action="version", version=f"kernelstate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve", help="serve scripts, notebooks or directories of them as apps",
        description="Serve each APP (a .py script, an .ipynb notebook, or a directory of them). "
                    "Every browser tab gets its own session and Bokeh Document.",
    )
    add_serve_arguments(serve)
    from .export import add_export_arguments

    add_export_arguments(sub.add_parser(
        "export", help="render a notebook as one HTML page that opens offline",
        description="Render NOTEBOOK with nbconvert, each kernelstate output embedded with inline BokehJS "
                    "(plots included); Python callbacks do not run in the page."))
    sub.add_parser(
        "hash-password", help="hash a password for a --basic-auth file (reads it from standard input)",
        description="Read one password from standard input (typed at a prompt on a terminal, else its first "
                    "line) and print its argon2 hash. Add the hash to the --basic-auth file as USER:HASH.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import ConfigError
    from .server.options import normalize_argv

    parser = build_parser()
    try:
        args = normalize_argv(sys.argv[1:] if argv is None else list(argv))
    except ConfigError as exc:
        parser.error(str(exc))
    ns = parser.parse_args(args)
    if ns.command == "export":
        from .export import run

        return run(ns)
    if ns.command == "hash-password":
        return _hash_password()
    if ns.command != "serve":
        parser.print_help()
        return 2
    return _serve(ns)


def _hash_password() -> int:
    import getpass

    from .auth.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("kernelstate hash-password: error: the passwords differ; nothing printed", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("kernelstate hash-password: error: empty password; give one on standard input", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def _serve(ns: argparse.Namespace) -> int:
    from .errors import AppLoadError, ConfigError
    from .loading import discover
    from .server.options import ServeOptions
    from .server.server import Server

    logging.basicConfig(level=getattr(logging, ns.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options = ServeOptions.from_argv(ns)
        apps = discover(ns.apps)
        server = Server(apps, options) if options.num_procs == 1 else None
    except (AppLoadError, ConfigError) as exc:
        print(f"kernelstate serve: error: {exc}", file=sys.stderr)
        return 2
    if server is None:
        return _serve_workers(ns, apps, options)
    try:
        asyncio.run(_run(server))
    except ConfigError as exc:
        print(f"kernelstate serve: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"Unix socket {ns.unix_socket}" if ns.unix_socket else f"{ns.address}:{ns.port}"
        print(f"kernelstate serve: cannot listen on {where}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        server.stop()
    return 0


async def _run(server: Server, sockets: list[socket.socket] | None = None,
               on_ready: Callable[[], None] | None = None) -> None:
    """Serve until stopped: one process (which prints the banner), or one worker of several (which calls on_ready)."""
    from .server.preload import preload

    loop = asyncio.get_running_loop()
    options = server.options
    # A dedicated server process: load what the first session needs, then move
    # everything loaded at startup out of the cyclic GC's reach, so full
    # collections (seen as callback jitter) stay short. All before the port opens.
    preload()
    gc.collect()
    gc.freeze()
    server.sockets = sockets
    server.start()
    await server.ready()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, server.drain if sig == signal.SIGTERM else server.stop)
        except (NotImplementedError, RuntimeError):
            pass
    if on_ready is not None:
        on_ready()
    elif options.unix_socket:   # no URL a browser could open: list the paths behind the socket
        print(f"kernelstate {__version__} serving {len(server.apps)} app(s) on Unix socket {options.unix_socket}",
              flush=True)
        for app in server.apps:
            print(f"  {options.prefix}{app.route}  ({app.title})", flush=True)
    else:
        print(f"kernelstate {__version__} serving {len(server.apps)} app(s) on {server.url}", flush=True)
        for title, url in server.app_urls():
            print(f"  {url}  ({title})", flush=True)
    await server.wait_stopped()


def _serve_workers(ns: argparse.Namespace, apps: list[AppSpec], options: ServeOptions) -> int:
    """--num-procs: bind once, fork the workers, supervise them (kernelstate/server/workers.py)."""
    from .server.listening import bind
    from .server.preload import preload
    from .server.server import Server
    from .server.workers import Supervisor, banner_lines, print_banner, shared_key, worker_count

    options = shared_key(options)
    try:
        sockets = bind(options)
    except OSError as exc:
        print(f"kernelstate serve: cannot listen on {ns.address}:{ns.port}: {exc}", file=sys.stderr)
        return 1
    preload()   # once, before forking: the workers share these pages of memory
    port = sockets[0].getsockname()[1]
    count = worker_count(options)
    if count > 1 and options.session_store_url is None:
        # Workers share one SQLite file: sessions recover on any worker, named tasks fire once per
        # period on the machine, publish reaches every worker (kernelstate.store, kernelstate.cluster.machine).
        from .cluster.machine import default_url

        options = dataclasses.replace(options, session_store=default_url(options.unix_socket or port))

    def worker(opts: ServeOptions, socks: list[socket.socket], ready: Callable[[], None]) -> int:
        fmt = f"%(asctime)s %(levelname)s %(name)s [worker pid {os.getpid()}]: %(message)s"
        for handler in logging.getLogger().handlers:
            handler.setFormatter(logging.Formatter(fmt))
        server = Server(apps, opts)
        try:
            asyncio.run(_run(server, socks, ready))
        except KeyboardInterrupt:
            server.stop()
        return 0

    lines = banner_lines(apps, options, port, __version__, count)

    def ready() -> None:
        print_banner(lines)
        if options.show:   # once, by the supervisor, not by every worker
            webbrowser.open(lines[1].split()[0])

    return Supervisor(dataclasses.replace(options, show=False), sockets, worker, ready).run()


if __name__ == "__main__":
    raise SystemExit(main())
