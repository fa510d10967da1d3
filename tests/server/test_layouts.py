"""Tabs, Accordion, GridBox, Spacer and Divider in served sessions: list edits and synced state."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from bokeh.models import Button, Div, GridBox, Spacer, Tabs

import kernelstate as ks
from kernelstate.testing import ProtocolClient


def test_tabs_active_syncs_both_ways_and_bad_index_is_refused(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A tab chosen in one browser is chosen in the other; Python sets it too; a tab index out of range is sent back."""
    tabs = ks.Tabs(("One", "first"), ("Two", "second"), ks.pane.Markdown("third", name="Three"))
    seen: list[int] = []
    tabs.param.watch(lambda e: seen.append(e.new), "active")
    server = ks_server(lambda: tabs)
    caplog.set_level(logging.WARNING, logger="kernelstate.components.validation")

    async def main() -> None:
        async with ProtocolClient(server.url) as a, ProtocolClient(server.url) as b:
            ta, tb = a.find(Tabs)[0], b.find(Tabs)[0]
            assert [p.title for p in ta.tabs] == ["One", "Two", "Three"]
            await a.set(ta, "active", 2)
            assert tabs.active == 2 and seen == [2]
            await b.wait_for(lambda: tb.active == 2)
            tabs.active = 1
            await a.wait_for(lambda: ta.active == 1)
            await b.wait_for(lambda: tb.active == 1)
            await a.set(ta, "active", 7)
            await a.wait_for(lambda: ta.active == 1)
            assert tabs.active == 1 and seen == [2, 1]
            assert any("Tabs.active" in r.getMessage() for r in caplog.records)

    asyncio.run(main())


def test_list_edits_keep_surviving_children_models(ks_server: Any) -> None:
    """append, pop, slice assignment and del reach every view; the children that stay keep their models."""
    col = ks.Column("a", "b", "c")
    tabs = ks.Tabs(("A", "tab a"), ("B", "tab b"))
    server = ks_server(lambda: ks.Column(col, tabs))

    async def main() -> None:
        async with ProtocolClient(server.url) as a, ProtocolClient(server.url) as b:
            tabs_ = (a, b)
            inner = {t: t.find(Tabs)[0] for t in tabs_}
            column = {t: next(m for m in t.document.roots[0].children if m is not inner[t]) for t in tabs_}
            before = {t: list(column[t].children) for t in tabs_}
            first_panel_child = {t: inner[t].tabs[0].child for t in tabs_}

            async def settle(predicate: Any) -> None:
                for t in tabs_:
                    await t.wait_for(lambda t=t: predicate(t))

            col.append("d")
            await settle(lambda t: len(column[t].children) == 4)
            assert all(column[t].children[:3] == before[t] for t in tabs_)
            col.pop(0)
            await settle(lambda t: len(column[t].children) == 3)
            assert all(column[t].children[:2] == before[t][1:] for t in tabs_)
            col[0:1] = ["x", "y"]
            await settle(lambda t: len(column[t].children) == 4)
            assert all(column[t].children[2] is before[t][2] and "x" in column[t].children[0].text for t in tabs_)
            del col[0]
            await settle(lambda t: len(column[t].children) == 3)
            tabs.append(("C", "tab c"))
            await settle(lambda t: len(inner[t].tabs) == 3)
            assert all(inner[t].tabs[0].child is first_panel_child[t] and inner[t].tabs[2].title == "C" for t in tabs_)

    asyncio.run(main())


def test_accordion_sections_open_from_browser_and_python(ks_server: Any) -> None:
    """Clicking a section header opens it for every view; toggle=True keeps one open."""
    acc = ks.Accordion(("A", "alpha"), ("B", "beta"), toggle=True)
    server = ks_server(lambda: acc)

    async def main() -> None:
        async with ProtocolClient(server.url) as a, ProtocolClient(server.url) as b:
            headers = [m for m in a.find(Button)]
            assert sorted(h.label for h in headers) == ["▸ A", "▸ B"]
            header_b = next(h for h in headers if h.label.endswith("B"))
            await a.click(header_b)
            assert acc.active == [1]
            await b.wait_for(lambda: any(h.label == "▾ B" for h in b.find(Button)))
            header_a = next(h for h in a.find(Button) if h.label.endswith("A"))
            await a.click(header_a)
            assert acc.active == [0]
            acc.active = []
            await b.wait_for(lambda: all(h.label.startswith("▸") for h in b.find(Button)))

    asyncio.run(main())


def test_gridbox_spacer_divider_models() -> None:
    """GridBox places children ncols per row and re-flows when ncols changes; Spacer and Divider render."""
    from kernelstate.session import Session

    session = Session()
    grid = ks.GridBox("a", "b", "c", ks.Spacer(width=20), ks.Divider(), ncols=2)
    model = grid.get_model(session.document, session)
    assert isinstance(model, GridBox)
    assert [(r, c) for _, r, c in model.children] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    assert isinstance(model.children[3][0], Spacer) and model.children[3][0].width == 20
    assert isinstance(model.children[4][0], Div) and "<hr>" in model.children[4][0].text
    kept = model.children[0][0]
    grid.ncols = 5
    assert [(r, c) for _, r, c in model.children] == [(0, i) for i in range(5)] and model.children[0][0] is kept
