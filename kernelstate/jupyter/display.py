"""Displaying a component in a notebook cell (``Component._repr_mimebundle_``).

Each display creates a new Document hosted by the kernel
(:mod:`kernelstate.jupyter.comm`) and returns:

- ``text/html``: a static snapshot (plain HTML, so untrusted notebooks,
  nbconvert and nbclient outputs show the content), the Document's JSON, and
  the cell runtime script (``static/cell.js``) that makes the output live
  through the server extension when the output is trusted;
- ``application/vnd.kernelstate.doc+json``: the kernel id, document id and
  token, for tools (and tests) that connect to the Document themselves;
- ``application/vnd.kernelstate.static+json``: the Document's JSON and root
  ids (:class:`kernelstate.standalone.Snapshot`), which ``kernelstate export``
  embeds with inline BokehJS, plots included;
- ``text/plain``: the component's repr.

JupyterLab and Notebook 7 pick ``text/html`` (the highest-ranked safe
renderer) for trusted and untrusted outputs alike; only trusted ones run the
script. An ``application/javascript`` output would not be picked while
``text/html`` is present, and would not render at all untrusted.

``ks.extension(comms=...)`` chooses the transports offered
(:mod:`kernelstate.jupyter.widget`): with ``"auto"`` (the default, when
anywidget is installed) the bundle also holds
``application/vnd.jupyter.widget-view+json``, which a frontend with a widget
manager renders in preference to ``text/html``; so the frontend's own choice
decides which view goes live, and the output's one Document is served to
whichever connects. ``"anywidget"`` drops the relay script (the HTML is the
static snapshot only); ``"relay"`` offers no widget.
"""
from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import bokeh
from bokeh.document import Document
from bokeh.model import Model

from .._config import config as ks_config
from ..docjson import document_json_inline
from ..standalone import STATIC_MIME, Snapshot
from .comm import kernel_documents, kernel_id
from .wire import MIME_TYPE

_STATIC = Path(__file__).resolve().parent / "static"
_HTML_TEXT_MODELS = ("Div", "Markdown")
_MAX_STATIC_DEPTH = 32
_SCRIPT_TAG = re.compile(r"</?script\b[^>]*>", re.IGNORECASE)


@lru_cache(maxsize=1)
def cell_runtime_js() -> str:
    return (_STATIC / "cell.js").read_text(encoding="utf-8")


def mimebundle(component: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The output of displaying ``component``: a new live Document for this cell."""
    hosted = kernel_documents().host_component(component)
    document = hosted.session.document
    assert document is not None
    config: dict[str, Any] = {
        "doc_id": hosted.doc_id,
        "kernel_id": kernel_id(),
        "token": hosted.token,
        "bokeh_version": bokeh.__version__,
        "roots": [model.id for model in document.roots],
        "docs_json": document_json_inline(document),
    }
    snapshot = static_html(document)
    comms = transports()
    data: dict[str, Any] = {
        "text/html": render_html(config, snapshot) if "relay" in comms else static_output(snapshot),
        "text/plain": repr(component),
        MIME_TYPE: {k: config[k] for k in ("doc_id", "kernel_id", "token", "bokeh_version")},
        STATIC_MIME: Snapshot(config["docs_json"], config["roots"]).to_json(),
    }
    if "anywidget" in comms:
        from .widget import DocumentWidget

        data.update(DocumentWidget(hosted, snapshot).mimebundle())
    return data, {}


def transports() -> tuple[str, ...]:
    """The live transports a new output offers, from ``ks.config.comms``."""
    mode = ks_config.comms
    if mode == "auto":
        return ("relay", "anywidget") if _have_anywidget() else ("relay",)
    return (str(mode),)


@lru_cache(maxsize=1)
def _have_anywidget() -> bool:
    from importlib.util import find_spec

    return find_spec("anywidget") is not None


def static_output(snapshot: str) -> str:
    """The output's HTML without the relay's runtime: the static snapshot, for views that are not live."""
    return f'<div class="ks-cell ks-cell-snapshot"><div class="ks-cell-static">{snapshot}</div></div>'


def render_html(config: dict[str, Any], snapshot: str) -> str:
    return (
        f'<div class="ks-cell" data-ks-doc="{html.escape(config["doc_id"])}">'
        f'<div class="ks-cell-static">{snapshot}</div></div>'
        f"<script>{cell_runtime_js()}\n"
        f"window.kernelstate.cellRuntime.mount(document.currentScript, {_script_json(config)});</script>"
    )


def _script_json(value: Any) -> str:
    # Valid JavaScript that cannot end the <script> element early.
    return (json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def static_html(document: Document) -> str:
    """Plain HTML approximating the Document: text, layouts, widgets' labels and values."""
    return "".join(_static(model, 0) for model in document.roots)


def _inert(markup: str) -> str:
    """HTML with its <script> elements shown as text.

    A trusted output's scripts run (JupyterLab evaluates them); the same
    markup rendered live by BokehJS (innerHTML) would not run them.
    """
    return _SCRIPT_TAG.sub(lambda m: html.escape(m.group(0)), markup)


def _prop(model: Model, name: str) -> Any:
    return getattr(model, name) if name in model.properties() else None


def _static(model: Any, depth: int) -> str:
    if not isinstance(model, Model) or depth > _MAX_STATIC_DEPTH:
        return ""
    if _prop(model, "visible") is False:
        return ""
    name = type(model).__name__
    children = _prop(model, "children")
    if isinstance(children, list):
        direction = "row" if name == "Row" else "column"
        inner = "".join(_static(child[0] if isinstance(child, tuple) else child, depth + 1) for child in children)
        return f'<div style="display:flex;flex-direction:{direction};gap:6px">{inner}</div>'
    text = _prop(model, "text")
    if isinstance(text, str):
        return f"<div>{_inert(text) if name in _HTML_TEXT_MODELS else html.escape(text)}</div>"
    label = _prop(model, "label")
    if isinstance(label, str):
        return f"<button disabled>{html.escape(label)}</button>"
    title, value = _prop(model, "title"), _prop(model, "value")
    parts = [html.escape(str(title)) + ":" if isinstance(title, str) and title else "",
             f"<b>{html.escape(str(value))}</b>" if value is not None else ""]
    shown = " ".join(p for p in parts if p)
    return f"<div>{shown}</div>" if shown else ""
