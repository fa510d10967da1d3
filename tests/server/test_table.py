"""DataTable over real served sessions: selection and edits from the browser, stream/patch as Bokeh patches."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from bokeh.models import ColumnDataSource, DataTable, Selection

import kernelstate as ks
from kernelstate.testing import ProtocolClient

pd = pytest.importorskip("pandas")


def frame() -> Any:
    return pd.DataFrame({"x": [1, 2, 3], "y": [0.5, 1.5, 2.5], "name": ["a", "b", "c"]})


def source_of(tab: ProtocolClient) -> Any:
    return tab.find(DataTable)[0].source


def test_selection_and_edits_from_the_browser(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A selection or a cell edit in one tab updates the parameter once and reaches the other tab as a patch."""
    table = ks.widgets.DataTable(frame(), editable=True)
    values: list[Any] = []
    table.param.watch(lambda e: values.append(e.new), "value")
    server = ks_server(lambda: table)
    caplog.set_level(logging.WARNING, logger="kernelstate.components.validation")

    async def main() -> None:
        async with ProtocolClient(server.url) as a, ProtocolClient(server.url) as b:
            sa, sb = source_of(a), source_of(b)
            assert [c.field for c in a.find(DataTable)[0].columns] == ["index", "x", "y", "name"]
            await a.set(sa.selected, "indices", [0, 2])
            assert table.selection == [0, 2]
            await b.wait_for(lambda: list(sb.selected.indices) == [0, 2])
            await a.set(sa.selected, "indices", [0, 9])  # no row 9: refused and sent back
            await a.wait_for(lambda: list(sa.selected.indices) == [0, 2])
            assert table.selection == [0, 2]

            b.patch_kinds.clear()
            await a.change(lambda: sa.patch({"y": [(1, 9.25)], "name": [(2, "zed")]}))
            assert table.value["y"].tolist() == [0.5, 9.25, 2.5] and table.value["name"].tolist()[2] == "zed"
            assert len(values) == 1
            await b.wait_for(lambda: list(sb.data["y"]) == [0.5, 9.25, 2.5] and list(sb.data["name"])[2] == "zed")
            assert ["ColumnsPatched"] in b.patch_kinds and not any("ModelChanged" in k for k in b.patch_kinds)

            await a.change(lambda: sa.patch({"x": [(0, 1.5)]}))  # not a whole number for an int column
            await a.wait_for(lambda: sa.data["x"][0] == 1)
            assert table.value["x"].tolist() == [1, 2, 3] and len(values) == 1
            table.editable = False
            await a.wait_for(lambda: not a.find(DataTable)[0].editable)
            await a.change(lambda: sa.patch({"y": [(0, 4.0)]}))
            await a.wait_for(lambda: sa.data["y"][0] == 0.5)
            assert table.value["y"].tolist()[0] == 0.5
            assert sum("DataTable.value" in r.getMessage() for r in caplog.records) == 1

    asyncio.run(main())


def test_stream_and_patch_are_sent_as_column_patches(ks_server: Any) -> None:
    """stream(rollover) arrives as ColumnsStreamed and patch() as ColumnsPatched, never as a reload of `data`."""
    table = ks.widgets.DataTable(frame())
    server = ks_server(lambda: table)

    async def main() -> None:
        async with ProtocolClient(server.url) as a, ProtocolClient(server.url) as b:
            for tab in (a, b):
                tab.patch_kinds.clear()
            table.stream({"x": [4, 5], "y": [3.5, 4.5], "name": ["d", "e"]}, rollover=4)
            assert table.value["x"].tolist() == [2, 3, 4, 5]
            for tab in (a, b):
                await tab.wait_for(lambda tab=tab: list(source_of(tab).data["x"]) == [2, 3, 4, 5])
                assert tab.patch_kinds == [["ColumnsStreamed"]]
            table.patch({"name": [(0, "B")]})
            for tab in (a, b):
                await tab.wait_for(lambda tab=tab: source_of(tab).data["name"][0] == "B")
                assert tab.patch_kinds[-1] == ["ColumnsPatched"]
            table.value = frame()
            await a.wait_for(lambda: list(source_of(a).data["x"]) == [1, 2, 3])
            assert any("ModelChanged" in kinds for kinds in a.patch_kinds[2:])

    asyncio.run(main())


def test_dataframe_pane_is_read_only() -> None:
    """ks.pane.DataFrame shows `object` read-only; setting `object` replaces the data."""
    from kernelstate.session import Session

    session = Session()
    pane = ks.pane.DataFrame(frame())
    model = pane.get_model(session.document, session)
    assert isinstance(model, DataTable) and not model.editable and isinstance(model.source, ColumnDataSource)
    assert isinstance(model.source.selected, Selection)
    pane.object = frame().head(1)
    assert list(model.source.data["x"]) == [1]


def test_pages_turn_from_the_browser_and_follow_streams(ks_server: Any) -> None:
    """With page_size the table shows one page; the pager turns it for every view; streaming keeps it valid."""
    from bokeh.models import Button, Div

    table = ks.widgets.DataTable(pd.DataFrame({"x": range(25)}), page_size=10)
    server = ks_server(lambda: table)

    async def main() -> None:
        async with ProtocolClient(server.url) as a, ProtocolClient(server.url) as b:
            def shown(tab: ProtocolClient) -> list[int]:
                return list(tab.find(DataTable)[0].view.filter.indices)

            def label(tab: ProtocolClient) -> str:
                return next(d.text for d in tab.find(Div) if "page" in d.text)

            assert shown(a) == list(range(10)) and label(a) == "page 1 of 3"
            back, forward = sorted(a.find(Button), key=lambda m: m.label != "‹")
            await a.click(forward)
            await a.click(forward)
            await a.click(forward)  # already on the last page: nothing happens
            assert table.page == 2
            await b.wait_for(lambda: shown(b) == list(range(20, 25)) and label(b) == "page 3 of 3")
            table.stream({"x": [25, 26, 27, 28, 29, 30]})
            await b.wait_for(lambda: label(b) == "page 3 of 4" and shown(b) == list(range(20, 30)))
            await a.click(back)
            await b.wait_for(lambda: shown(b) == list(range(10, 20)))

    asyncio.run(main())
