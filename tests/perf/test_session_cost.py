"""Non-timed guards on what one session of the bench's ``basic`` app costs (issue 20).

Timings are for ``bench/``; these count the work instead, so a change that
makes every session build more Bokeh objects, or send a bigger first
document, fails here on any machine. Update the numbers deliberately (and say
why in the commit) when the app or the page really needs more.
"""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

from bokeh.core.json_encoder import serialize_json
from bokeh.util.serialization import make_id

from kernelstate.context import activate
from kernelstate.docjson import document_json
from kernelstate.loading import FileApp
from kernelstate.session import Session

BASIC = Path(__file__).resolve().parents[2] / "bench" / "apps" / "ks" / "basic.py"
#: DocumentConfig and Notifications (every Bokeh Document), the Column, two Divs, the Slider and the Button.
BOKEH_OBJECTS_PER_SESSION = 7
#: the PULL-DOC reply's document, with every id written as a 5-character one (p1234) as on a fresh server.
PULL_DOC_BYTES = 784


def build_basic() -> tuple[int, Session]:
    """(Bokeh ids drawn while building one session of the basic app, the session)."""
    async def build() -> tuple[int, Session]:
        before = int(make_id()[1:])
        session = Session(loop=asyncio.get_running_loop())
        await FileApp(BASIC).build(session)
        return int(make_id()[1:]) - before - 1, session
    return asyncio.run(build())


def test_bokeh_objects_per_basic_session() -> None:
    """Every Bokeh model (and buffer) takes an id: count what one session draws, kept in its Document or not."""
    FileApp(BASIC)  # compiled once, as the server does
    drawn, session = build_basic()
    try:
        assert drawn == BOKEH_OBJECTS_PER_SESSION, f"a basic session built {drawn} Bokeh objects"
        assert len(session.document.models) == BOKEH_OBJECTS_PER_SESSION - 2
    finally:
        session.destroy()


def test_pull_doc_bytes_of_a_basic_session() -> None:
    drawn, session = build_basic()
    try:
        text = serialize_json(document_json(session.document).content)
        size = len(re.sub(r'"p\d+"', '"p1234"', text).encode())
        assert size == PULL_DOC_BYTES, f"the basic app's first document is {size} bytes"
        assert text == serialize_json(session.document.to_json().content)
    finally:
        session.destroy()


def test_a_page_without_a_connection_builds_no_component_models() -> None:
    """The standalone server answers a page from the app's plan; the Document and its models wait for the WebSocket."""
    FileApp(BASIC)

    async def plan() -> tuple[int, int, Session]:
        before = int(make_id()[1:])
        session = Session(loop=asyncio.get_running_loop())
        page_plan = await FileApp(BASIC).plan(session)
        middle = int(make_id()[1:])
        with activate(session):
            page_plan.populate()
        return middle - before - 1, int(make_id()[1:]) - middle - 1, session

    planned, populated, session = asyncio.run(plan())
    try:
        assert planned == 0, f"planning a basic page drew {planned} Bokeh ids (no Document, no model expected)"
        assert planned + populated == BOKEH_OBJECTS_PER_SESSION
        assert len(session.document.roots) == 1
    finally:
        session.destroy()
