"""``%serve`` and ``%%serve``: serve apps from a notebook kernel.

``%load_ext kernelstate`` registers them. Usage::

    %serve OBJ [--port N] [--threaded] [--show] [--proxy | --direct]
    %%serve [--port N] [--threaded] [--title TITLE]      (the cell is the app)
    %serve --list
    %serve --stop [PORT|all]

``OBJ`` is a name or expression from the notebook (a component, a callable
called once per session, or a dict of route -> either) or the path of a
``.py``/``.ipynb`` file (relative to the kernel's working directory). The
server runs on the kernel's event loop unless ``--threaded``; the link it
prints goes through jupyter-server-proxy when the notebook is behind a prefix
(JupyterHub, Binder, any ``base_url``), and is a direct ``localhost`` link
otherwise. More options: ``--prefix P`` (a fixed URL prefix instead of the
random one), ``--allow-websocket-origin HOST[:PORT]`` (repeatable).

Importing this module is cheap (IPython is already loaded when it is);
the server code is imported on the first ``%serve``.
"""
from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .kernel_server import ServedApp

_FLAGS = {"--threaded": "threaded", "--show": "show", "--list": "list_servers", "--help": "help"}
_VALUED = {"--port", "--prefix", "--allow-websocket-origin", "--title"}
_APP_SUFFIXES = (".py", ".ipynb")
USAGE = """\
%serve OBJ [--port N] [--threaded] [--show] [--proxy | --direct] [--title T]
           [--prefix P] [--allow-websocket-origin HOST[:PORT]]
%%serve [--port N] [--threaded] [--title T]        (the cell is the app)
%serve --list
%serve --stop [PORT|all]"""


@dataclass
class ServeArgs:
    """``%serve``'s parsed line."""

    expr: str = ""
    port: int = 0
    threaded: bool = False
    show: bool = False
    list_servers: bool = False
    stop: str | None = None          # "all" or a port number
    proxy: bool | None = None        # None: decide from the environment
    prefix: str | None = None
    origins: list[str] = field(default_factory=list)
    title: str | None = None
    help: bool = False


def parse_line(line: str) -> ServeArgs:
    """Split ``line`` into options and the expression to serve.

    Options are recognised anywhere in the line; everything else, joined with
    spaces, is the expression (so ``%serve {"a": app_a, "b": app_b}`` works).
    """
    args = ServeArgs()
    tokens = line.split()
    rest: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, inline = token.partition("=")
        if name in ("--proxy", "--direct") and not eq:
            args.proxy = name == "--proxy"
        elif name in _FLAGS and not eq:
            setattr(args, _FLAGS[name], True)
        elif name == "--stop":
            if eq:
                args.stop = inline
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                args.stop = tokens[i + 1]
                i += 1
            else:
                args.stop = "all"
        elif name in _VALUED:
            if eq:
                value = inline
            elif i + 1 < len(tokens):
                value = tokens[i + 1]
                i += 1
            else:
                raise UsageError(f"%serve: {name} needs a value")
            _set_valued(args, name, value)
        elif token.startswith("--"):
            raise UsageError(f"%serve: unknown option {token!r}; see %serve? for usage")
        else:
            rest.append(token)
        i += 1
    args.expr = " ".join(rest)
    return args


def _set_valued(args: ServeArgs, name: str, value: str) -> None:
    if name == "--port":
        if not value.isdigit() or int(value) > 65535:
            raise UsageError(f"%serve: --port expects a number in 0..65535 (0 picks a free port); got {value!r}")
        args.port = int(value)
    elif name == "--prefix":
        args.prefix = value.strip("'\"")
    elif name == "--title":
        args.title = value
    else:
        args.origins.append(value)


def resolve(expr: str, namespace: dict[str, Any], cwd: str | None = None) -> tuple[Any, str]:
    """What ``%serve EXPR`` serves, and a label for it.

    A bare path to an existing ``.py``/``.ipynb`` file is taken as a path;
    anything else is evaluated in the notebook's namespace (a string result
    naming such a file is a path too).

    Raises:
        UsageError: the expression fails, or names a file that does not exist.
    """
    cwd = cwd or os.getcwd()
    bare = expr.strip()
    if bare.endswith(_APP_SUFFIXES) and not bare.isidentifier():
        value: Any = bare.strip("'\"")
    else:
        try:
            value = eval(bare, namespace)
        except Exception as exc:
            raise UsageError(
                f"%serve: cannot evaluate {bare!r} in the notebook: {type(exc).__name__}: {exc}. "
                "Pass a component, a callable, a dict of them, or a .py/.ipynb path") from None
    if isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = Path(cwd) / path
        if path.suffix not in _APP_SUFFIXES:
            raise UsageError(f"%serve: {str(value)!r} is a string but not a .py/.ipynb path")
        if not path.is_file():
            raise UsageError(f"%serve: no such file {str(value)!r} (relative to {cwd})")
        return path, path.name
    return value, bare


def render(served: ServedApp) -> dict[str, str]:
    """The mimebundle announcing a server: its links, as text and as HTML."""
    where = " (through jupyter-server-proxy)" if served.proxied else ""
    mode = ", threaded" if served.threaded else ""
    lines = [f"kernelstate: serving {served.label} on port {served.port}{mode}{where}"]
    items = []
    for title, url in served.links:
        lines.append(f"  {url}" + (f"  ({title})" if len(served.links) > 1 else ""))
        link = f'<a href="{html.escape(url)}" target="_blank" rel="noopener">{html.escape(url)}</a>'
        items.append(f"<li>{link}" + (f" ({html.escape(title)})" if len(served.links) > 1 else "") + "</li>")
    head = html.escape(lines[0])
    return {"text/plain": "\n".join(lines),
            "text/html": f'<div class="kernelstate-served">{head}<ul>{"".join(items)}</ul></div>'}


@magics_class
class ServeMagics(Magics):
    """``%serve`` / ``%%serve``; see the module docstring."""

    @line_cell_magic
    def serve(self, line: str, cell: str | None = None) -> None:
        """Serve a component, callable, notebook or script (or, as ``%%serve``, the cell).

        %serve OBJ [--port N] [--threaded] [--show] [--proxy | --direct]
        %%serve [--port N] [--threaded] [--title TITLE]
        %serve --list
        %serve --stop [PORT|all]

        The server binds 127.0.0.1 under a random URL prefix and runs on the
        kernel's event loop (``--threaded``: its own thread). Behind JupyterHub,
        Binder or any Jupyter base_url, the printed link goes through
        jupyter-server-proxy ({base_url}proxy/{port}/...). ``--show`` opens a
        direct link in a browser on the kernel's machine.
        """
        args = parse_line(line)
        if args.help:
            _display({"text/plain": USAGE})
            return
        from . import kernel_server

        if args.list_servers:
            self._list(kernel_server)
            return
        if args.stop is not None:
            self._stop(kernel_server, args.stop)
            return
        if cell is None and not args.expr:
            raise UsageError("%serve: what should be served? e.g. %serve app, %serve dashboard.ipynb, "
                             "%serve --list, %serve --stop PORT; or use %%serve in a cell")
        if cell is not None:
            if args.expr:
                raise UsageError(f"%%serve serves the cell; drop {args.expr!r} from the first line")
            source = self.shell.transform_cell(cell) if self.shell is not None else cell  # type: ignore[no-untyped-call]
            try:
                obj: Any = [kernel_server.CellApp(source, self.shell.user_ns if self.shell else {}, title=args.title)]
            except SyntaxError as exc:
                raise UsageError(f"%%serve: the cell has a syntax error: {exc}") from None
            label = "the cell"
        else:
            obj, label = resolve(args.expr, self.shell.user_ns if self.shell else {})
        from ..errors import KernelstateError

        try:
            served = kernel_server.start(
                obj, label=label, port=args.port, threaded=args.threaded, location=self._location(args),
                prefix=args.prefix, allow_websocket_origin=tuple(args.origins), show=args.show, title=args.title,
            )
        except OSError as exc:
            raise UsageError(f"%serve: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from None
        except KernelstateError as exc:
            raise UsageError(f"%serve: {exc}") from None
        _display(render(served))

    @staticmethod
    def _location(args: ServeArgs) -> Any:
        from .proxy import JupyterLocation, jupyter_location

        location = jupyter_location()
        if args.proxy is None:
            return location
        if not args.proxy:
            return None
        if location is None:
            return JupyterLocation("/", "", True, "--proxy")
        return replace(location, proxied=True)

    @staticmethod
    def _list(kernel_server: Any) -> None:
        mine = kernel_server.served()
        others = kernel_server.other_servers()
        if not mine and not others:
            _display({"text/plain": "kernelstate: no servers running in this kernel"})
            return
        rows = [(s.port, s.label, s.url, "threaded" if s.threaded else "kernel loop") for s in mine]
        rows += [(s.port, "ks.serve", s.url, "") for s in others]
        text = "\n".join(f"{port:>6}  {label}  {url}  {mode}".rstrip() for port, label, url, mode in rows)
        cells = "".join(
            f"<tr><td>{port}</td><td>{html.escape(str(label))}</td>"
            f'<td><a href="{html.escape(url)}" target="_blank" rel="noopener">{html.escape(url)}</a></td>'
            f"<td>{mode}</td></tr>" for port, label, url, mode in rows)
        _display({"text/plain": "kernelstate servers:\n" + text,
                  "text/html": f"<table><tr><th>port</th><th>serving</th><th>link</th><th></th></tr>{cells}</table>"})

    @staticmethod
    def _stop(kernel_server: Any, which: str) -> None:
        if which != "all" and not which.isdigit():
            raise UsageError(f"%serve --stop expects a port number or 'all'; got {which!r}")
        try:
            ports = kernel_server.stop(None if which == "all" else int(which))
        except LookupError as exc:
            raise UsageError(f"%serve --stop: {exc}") from None
        message = f"kernelstate: stopped server(s) on port {', '.join(map(str, ports))}" if ports else \
            "kernelstate: no servers were running"
        _display({"text/plain": message})


def _display(bundle: dict[str, str]) -> None:
    from IPython.display import display

    display(bundle, raw=True)  # type: ignore[no-untyped-call]


def load_ipython_extension(ip: InteractiveShell) -> None:
    """Register ``%serve`` / ``%%serve`` with IPython."""
    ip.register_magics(ServeMagics)


__all__: Sequence[str] = ["ServeArgs", "ServeMagics", "load_ipython_extension", "parse_line", "resolve"]
