"""The widget transport: a cell output live over the Jupyter widget comm (anywidget).

Wherever a Jupyter widget manager runs anywidget's front-end (JupyterLab and
Notebook 7 without kernelstate's server extension, VS Code, Colab, marimo),
a displayed component's output holds a :class:`DocumentWidget`. Its
front-end module (``static/widget.js``) speaks the Bokeh protocol to the
output's Document over the widget's own comm, as custom messages with binary
buffers, and hands the Document to stock BokehJS, which the kernel sends
once per JavaScript realm (the first view to find no ``window.Bokeh`` asks
for it). No CDN, no network: everything comes from this package and bokeh's.

The kernel side uses anywidget/ipywidgets' comm only (the ``comm`` package),
never ipykernel, so it runs in marimo too.

One output has one Document (:class:`~kernelstate.jupyter.comm.HostedDocument`),
whichever transport serves it; each widget view is one connection to it
(a :class:`~kernelstate.jupyter.comm.CommConnection` over a :class:`ViewComm`).
Lifecycle: when a view leaves the page (output cleared, cell re-run or
deleted) its front-end says so; the Document is destroyed once its last
connection is gone, and the widget is closed with it. Re-running the cell,
the cap on live outputs, or destroying the Document any other way also
closes the widget. Closing a notebook's tab while its kernel runs says
nothing to the kernel (JupyterLab keeps the widget models, and a reopened
notebook renders and connects them again); the cap on live outputs bounds
what such outputs hold.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import anywidget
import traitlets
from bokeh.util.paths import bokehjs_path

from ..endpoint import CloseCode
from .comm import CommConnection, HostedDocument, kernel_documents
from .wire import close_data

log = logging.getLogger(__name__)

_STATIC = Path(__file__).resolve().parent / "static"
#: BokehJS bundles a cell needs, in load order (as the relay's cell runtime loads them).
BOKEHJS_BUNDLES = ("bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables")
#: BokehJS goes out in parts of this size: comm messages stay small for every frontend
#: (Jupyter's IOPub data-rate limit counts stream output only, but others cap message sizes).
BOKEHJS_PART_BYTES = 256 * 1024
MAX_VIEW_ID = 64


@lru_cache(maxsize=1)
def widget_js() -> str:
    return (_STATIC / "widget.js").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def bokehjs_parts() -> tuple[bytes, ...]:
    """The BokehJS bundles as one script, cut into parts of BOKEHJS_PART_BYTES."""
    js = Path(bokehjs_path()) / "js"
    script = "\n;\n".join((js / f"{name}.min.js").read_text(encoding="utf-8") for name in BOKEHJS_BUNDLES)
    data = script.encode("utf-8")
    return tuple(data[i:i + BOKEHJS_PART_BYTES] for i in range(0, len(data), BOKEHJS_PART_BYTES))


class ViewComm:
    """One widget view, seen by a :class:`CommConnection` as if it were a comm of its own."""

    def __init__(self, widget: DocumentWidget, view_id: str) -> None:
        self.widget = widget
        self.view_id = view_id
        self.msg_callback: Callable[[dict[str, Any]], None] | None = None
        self.close_callback: Callable[[dict[str, Any]], None] | None = None

    def on_msg(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self.msg_callback = callback

    def on_close(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self.close_callback = callback

    def send(self, data: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.widget.send({"ks": "frames", "view": self.view_id, **data}, buffers or [])

    def close(self, data: dict[str, Any]) -> None:
        """The kernel ends this view's connection (the Document was destroyed, or a bad message)."""
        self.widget.view_ended(self.view_id)
        self.widget.send({"ks": "closed", "view": self.view_id, **data}, [])

    # -- from the front-end ---------------------------------------------------------------
    def received(self, data: dict[str, Any], buffers: list[Any]) -> None:
        if self.msg_callback is not None:
            self.msg_callback({"content": {"data": data}, "buffers": buffers})

    def left(self) -> None:
        if self.close_callback is not None:
            self.close_callback({})


class DocumentWidget(anywidget.AnyWidget):
    """The widget view of one displayed output's Document."""

    #: how many times this kernel sent BokehJS (once per JavaScript realm that asked)
    bokehjs_sent = 0

    _esm = traitlets.Unicode(widget_js()).tag(sync=True)
    bokeh_version = traitlets.Unicode("").tag(sync=True)
    snapshot = traitlets.Unicode("").tag(sync=True)

    def __init__(self, hosted: HostedDocument, snapshot: str) -> None:
        import bokeh

        super().__init__(bokeh_version=bokeh.__version__, snapshot=snapshot)
        self.hosted = hosted
        self.views: dict[str, ViewComm] = {}
        self.had_view = False
        self.on_msg(self._on_custom)
        hosted.session.on_destroy(lambda session: self.close())

    def close(self) -> None:
        """Close the widget and the Layout widget ipywidgets made for it (or the kernel keeps that one)."""
        layout = self.layout
        super().close()
        if layout is not None:
            layout.close()

    def mimebundle(self) -> dict[str, Any]:
        bundle = self._repr_mimebundle_()
        data = bundle[0] if isinstance(bundle, tuple) else {}
        return {k: v for k, v in data.items() if k != "text/plain"}

    # -- messages from the front-end --------------------------------------------------------
    def _on_custom(self, widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind, view_id = content.get("ks"), content.get("view")
        if kind == "bokehjs":
            self._send_bokehjs()
            return
        if not isinstance(view_id, str) or not 0 < len(view_id) <= MAX_VIEW_ID:
            log.warning("ignored a widget message without a valid view id (doc=%s)", self.hosted.doc_id)
            return
        if kind == "connect":
            self._connect(view_id)
        elif kind == "frames":
            view = self.views.get(view_id)
            if view is not None:
                view.received(content, buffers)
        elif kind == "close":
            self._view_left(view_id)

    def _send_bokehjs(self) -> None:
        parts = bokehjs_parts()
        DocumentWidget.bokehjs_sent += 1
        for i, part in enumerate(parts):
            self.send({"ks": "bokehjs", "part": i, "parts": len(parts)}, [part])

    def _connect(self, view_id: str) -> None:
        hosted = self.hosted
        if hosted.session.destroyed or kernel_documents().get(hosted.doc_id) is None:
            self.send({"ks": "closed", "view": view_id,
                       **close_data(CloseCode.SESSION_EXPIRED, "this output is no longer live in the kernel: re-run the cell")})
            return
        if view_id in self.views:
            return
        view = ViewComm(self, view_id)
        self.views[view_id] = view
        self.had_view = True
        self.send({"ks": "ready", "view": view_id, "token": hosted.token, "roots": len(hosted.session.document.roots)
                   if hosted.session.document is not None else 0})
        conn = CommConnection(view, hosted)
        hosted.connections.append(conn)
        hosted.endpoint.attach(conn)
        hosted.session.mark_reconnected()

    def _view_left(self, view_id: str) -> None:
        view = self.views.pop(view_id, None)
        if view is None:
            return
        view.left()
        if not self.hosted.connections:
            # The output left the page: its Document goes (and closes this widget).
            kernel_documents().destroy(self.hosted.doc_id, CloseCode.SESSION_EXPIRED, "the output was removed")

    def view_ended(self, view_id: str) -> None:
        self.views.pop(view_id, None)

