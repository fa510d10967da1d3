"""Static pages: a component's current state as HTML that opens from ``file://``, with no server.

A :class:`Snapshot` is a Document's JSON and its root ids: what BokehJS needs
to render the models once, without a session. :func:`snapshot` takes one of a
component (a throwaway session and Document on a loop and thread of their own,
so bound coroutines finish; dropped at once); the notebook renderer puts the
displayed Document's in each output (``STATIC_MIME``) so
:mod:`kernelstate.export` can embed it.

:func:`render_page` writes a page the way a served session's page looks
(the ``ks.state.template`` title and template, ``ks.config.raw_css``) with
BokehJS and kernelstate's CSS inline, so nothing is fetched: no CDN, no
server. Models render with the values they had; Python callbacks do not run
(no kernel is behind the page), JavaScript ones (``jslink``, ``CustomJS``) do.
"""
from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import bokeh
from bokeh.resources import Resources
from bokeh.util.serialization import make_globally_unique_css_safe_id

from .context import activate
from .errors import KernelstateError
from .request import RequestInfo
from .session import Session, current_session

#: The mime type of a snapshot in a notebook output (:meth:`Snapshot.to_json`).
STATIC_MIME = "application/vnd.kernelstate.static+json"
SNAPSHOT_VERSION = 1
#: How long :func:`snapshot` waits for async bound functions to show their result.
SETTLE_S = 10.0


class SnapshotError(KernelstateError, ValueError):
    """A snapshot (a notebook output's ``STATIC_MIME`` data) that cannot be rendered."""


@dataclass(frozen=True)
class Snapshot:
    """A Document's JSON (``Document.to_json()``) and the ids of the roots to show, in order."""

    doc: dict[str, Any]
    root_ids: list[str]
    bokeh_version: str = bokeh.__version__

    def to_json(self) -> dict[str, Any]:
        return {"version": SNAPSHOT_VERSION, "bokeh_version": self.bokeh_version, "doc": self.doc,
                "root_ids": list(self.root_ids)}

    @classmethod
    def from_json(cls, data: Any) -> Snapshot:
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            version = data.get("version") if isinstance(data, dict) else type(data).__name__
            raise SnapshotError(f"{STATIC_MIME} data of version {version!r} cannot be read (expected "
                                f"{SNAPSHOT_VERSION}); re-run the notebook with this kernelstate")
        return cls(dict(data["doc"]), [str(r) for r in data["root_ids"]], str(data["bokeh_version"]))


def snapshot(component: Any, settle_s: float = SETTLE_S) -> Snapshot:
    """The current state of ``component`` (or anything a layout accepts: a string, a Bokeh model, a bound
    function) as a :class:`Snapshot`.

    The model is built in a throwaway session with an event loop of its own,
    on a thread of its own (so this works from a running loop too, as in a
    notebook cell): bound functions run, async ones and async generators are
    awaited for up to ``settle_s`` seconds (then what they showed so far is
    kept). The session is destroyed afterwards, so the component keeps no view.
    """
    from .components.base import as_component

    comp = as_component(component)
    outcome: list[Snapshot | BaseException] = []

    def work() -> None:
        try:
            outcome.append(asyncio.run(_build(comp, settle_s)))
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=work, name="kernelstate-snapshot", daemon=True)
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


async def _build(component: Any, settle_s: float) -> Snapshot:
    loop = asyncio.get_running_loop()
    session = Session(RequestInfo(), session_id=f"snapshot-{make_globally_unique_css_safe_id()}", loop=loop)
    try:
        document = session.document
        assert document is not None
        with activate(session):
            document.add_root(component.get_model(document, session))
        deadline = loop.time() + settle_s
        while (pending := [t for t in session.scheduler.tasks if not t.done()]) and loop.time() < deadline:
            await asyncio.wait(pending, timeout=deadline - loop.time())
        await asyncio.sleep(0)  # callbacks the last tasks scheduled
        return Snapshot(document.to_json(deferred=False), [root.id for root in document.roots])  # type: ignore[arg-type]
    finally:
        session.destroy()


@dataclass(frozen=True)
class PageLook:
    """What a page looks like beyond its models: the title, the template's name and extra CSS."""

    title: str
    template_name: str
    raw_css: tuple[str, ...] = ()

    @classmethod
    def current(cls, default_title: str, title: str | None = None, template: str | None = None) -> PageLook:
        """The look of the current session's page (``ks.state.template``, ``ks.config``), or the overrides."""
        from ._config import config
        from .template import TEMPLATE_NAMES, session_template

        session = current_session()
        chosen = session_template(session)
        if template is not None and template not in TEMPLATE_NAMES:
            raise ValueError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATE_NAMES)}")
        resolved = title or chosen.title or session.title or config.title or default_title
        return cls(resolved, template or chosen.template_name, tuple(config.raw_css))


def render_page(snap: Snapshot, look: PageLook) -> str:
    """A standalone HTML page showing ``snap``'s roots in the main area of ``look``'s template."""
    from .web.page import environment

    element_ids = [make_globally_unique_css_safe_id() for _ in snap.root_ids]
    return environment().get_template("standalone.html").render(
        layout=f"{look.template_name}.html", title=look.title, template_name=look.template_name,
        roots={"header": [], "sidebar": [], "main": element_ids}, raw_css=list(look.raw_css),
        inline_css=inline_css(look.template_name), inline_js=bokehjs_inline(),
        embed_script=embed_script(snap, element_ids), spinner=False,
    )


def save(component: Any, filename: str | os.PathLike[str], *, title: str | None = None,
         template: str | None = None) -> Path:
    """Write ``component``'s current state to ``filename`` as a standalone page; return its path."""
    look = PageLook.current(default_title=getattr(component, "name", "") or "kernelstate", title=title,
                            template=template)
    path = Path(filename)
    if path.is_dir():
        raise IsADirectoryError(f"cannot save a page to {str(path)!r}: it is a directory; pass a file name "
                                "such as 'page.html'")
    snap = snapshot(component)
    path.write_text(render_page(snap, look), encoding="utf-8")
    return path


def embed_script(snap: Snapshot, element_ids: Sequence[str]) -> str:
    """``<script>`` elements that render ``snap``'s roots into the elements ``element_ids`` (same order).

    Needs BokehJS loaded before it (:func:`bokehjs_inline`).
    """
    if len(element_ids) != len(snap.root_ids):
        raise SnapshotError(f"{len(snap.root_ids)} roots but {len(element_ids)} elements to render them into")
    doc_id = make_globally_unique_css_safe_id()
    item = {"docid": doc_id, "roots": dict(zip(snap.root_ids, element_ids, strict=True)),
            "root_ids": list(snap.root_ids)}
    data_id = make_globally_unique_css_safe_id()
    payload = {"docs": {doc_id: snap.doc}, "items": [item]}
    return (f'<script type="application/json" id="{data_id}">{script_json(payload)}</script>'
            "<script>(function () { const data = JSON.parse(document.getElementById("
            f'"{data_id}").textContent); window.Bokeh.embed.embed_items(data.docs, data.items); }})();</script>')


@lru_cache(maxsize=1)
def bokehjs_inline() -> tuple[str, ...]:
    """BokehJS (core, GL, widgets, tables) as the texts of inline scripts, from the installed bokeh."""
    from .web.page import BOKEH_COMPONENTS

    scripts = Resources(mode="inline", components=BOKEH_COMPONENTS).js_raw
    for script in scripts:
        if "</script" in script.lower():  # would end the inline <script> element early
            raise SnapshotError(f"bokeh {bokeh.__version__}'s BokehJS contains '</script' and cannot be inlined")
    return tuple(scripts)


@lru_cache(maxsize=4)
def inline_css(template_name: str) -> tuple[str, ...]:
    """kernelstate's page CSS and the template's, as texts (what a served page links from ks-static/)."""
    css = files("kernelstate").joinpath("static", "css")
    return (css.joinpath("kernelstate.css").read_text(encoding="utf-8"),
            css.joinpath(f"{template_name}.css").read_text(encoding="utf-8"))


def script_json(value: Any) -> str:
    """JSON that cannot end a ``<script>`` element early (for ``type="application/json"`` scripts)."""
    return (json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


__all__ = ["STATIC_MIME", "PageLook", "Snapshot", "SnapshotError", "bokehjs_inline", "embed_script", "render_page",
           "save", "snapshot"]
