"""The ``kernelstate`` command line: ``kernelstate serve APP...`` and ``kernelstate hash-password``."""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence

from ._version import __version__


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
    from .server.preload import preload
    from .server.server import Server

    logging.basicConfig(level=getattr(logging, ns.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        options = ServeOptions.from_argv(ns)
        server = Server(discover(ns.apps), options)
    except (AppLoadError, ConfigError) as exc:
        print(f"kernelstate serve: error: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        loop = asyncio.get_running_loop()
        # A dedicated server process: load what the first session needs, then move
        # everything loaded at startup out of the cyclic GC's reach, so full
        # collections (seen as callback jitter) stay short. All before the port opens.
        preload()
        gc.collect()
        gc.freeze()
        server.start()
        await server.ready()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, server.stop)
            except (NotImplementedError, RuntimeError):
                pass
        if options.unix_socket:   # no URL a browser could open: list the paths behind the socket
            print(f"kernelstate {__version__} serving {len(server.apps)} app(s) on Unix socket {options.unix_socket}",
                  flush=True)
            for app in server.apps:
                print(f"  {options.prefix}{app.route}  ({app.title})", flush=True)
        else:
            print(f"kernelstate {__version__} serving {len(server.apps)} app(s) on {server.url}", flush=True)
            for title, url in server.app_urls():
                print(f"  {url}  ({title})", flush=True)
        await server.wait_stopped()

    try:
        asyncio.run(run())
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


if __name__ == "__main__":
    raise SystemExit(main())
