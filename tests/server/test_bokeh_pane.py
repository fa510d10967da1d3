"""ks.pane.Bokeh: one figure in several sessions (cloned per view, data changes mirrored), or a factory per view."""
from __future__ import annotations

import asyncio
from typing import Any

from bokeh.models import ColumnDataSource, Plot
from bokeh.plotting import figure

import kernelstate as ks
from kernelstate.session import Session
from kernelstate.testing import ProtocolClient


def test_figure_in_two_sessions_mirrors_stream_patch_and_assignment(ks_server: Any) -> None:
    """Each tab gets its own clone; stream/patch on the template arrive as stream/patch patches in every tab."""
    source = ColumnDataSource({"x": [0, 1], "y": [0, 1]})
    fig = figure(title="live")
    fig.line("x", "y", source=source)
    pane = ks.pane.Bokeh(fig)
    server = ks_server(lambda: pane)

    async def main() -> None:
        async with ProtocolClient(server.url) as a, ProtocolClient(server.url) as b:
            tabs = (a, b)
            sources = {t: t.document.get_model_by_id(source.id) for t in tabs}
            assert all(s is not None and list(s.data["x"]) == [0, 1] for s in sources.values())
            for t in tabs:
                t.patch_kinds.clear()
            source.stream({"x": [2], "y": [4]}, rollover=2)
            for t in tabs:
                await t.wait_for(lambda t=t: list(sources[t].data["x"]) == [1, 2])
                assert t.patch_kinds == [["ColumnsStreamed"]]
            source.patch({"y": [(0, 9)]})
            for t in tabs:
                await t.wait_for(lambda t=t: list(sources[t].data["y"]) == [9, 4])
                assert t.patch_kinds[-1] == ["ColumnsPatched"]
            source.data = {"x": [5], "y": [5]}
            fig.title.text = "changed"
            for t in tabs:
                await t.wait_for(lambda t=t: list(sources[t].data["x"]) == [5] and "changed" in t.text())

    asyncio.run(main())


def test_figure_in_two_cells_and_a_factory_per_view() -> None:
    """Two Documents (two notebook cells) get distinct clones; a factory is called once per view in its session."""
    source = ColumnDataSource({"x": [1], "y": [1]})
    fig = figure()
    fig.scatter("x", "y", source=source)
    pane = ks.pane.Bokeh(fig)
    cell1, cell2 = Session(), Session()
    m1, m2 = pane.get_model(cell1.document, cell1), pane.get_model(cell2.document, cell2)
    cell1.document.add_root(m1)
    cell2.document.add_root(m2)
    assert isinstance(m1, Plot) and m1 is not m2 and m1 is not fig
    source.stream({"x": [2], "y": [2]})
    for cell in (cell1, cell2):
        clone = cell.document.get_model_by_id(source.id)
        assert clone is not source and list(clone.data["x"]) == [1, 2]

    built: list[str] = []

    def make() -> Any:
        built.append(ks.state.session_id)
        return figure(title=ks.state.session_id[:6])

    factory_pane = ks.pane.Bokeh(make)
    f1, f2 = factory_pane.get_model(cell1.document, cell1), factory_pane.get_model(cell2.document, cell2)
    assert f1 is not f2 and built == [cell1.id, cell2.id]


def test_figure_built_in_a_session_stays_in_it(ks_server: Any) -> None:
    """A figure an app builds per session streams to that session only."""
    sources: list[ColumnDataSource] = []

    def app() -> Any:
        source = ColumnDataSource({"x": [0], "y": [0]})
        sources.append(source)
        fig = figure()
        fig.line("x", "y", source=source)
        return ks.pane.Bokeh(fig)

    server = ks_server(app)

    async def main() -> None:
        async with ProtocolClient(server.url) as a, ProtocolClient(server.url) as b:
            first, second = sources
            first.stream({"x": [1], "y": [1]})
            await a.wait_for(lambda: len(a.find(ColumnDataSource)[0].data["x"]) == 2)
            await asyncio.sleep(0.2)
            assert len(b.find(ColumnDataSource)[0].data["x"]) == 1 and second.data["x"] == [0]

    asyncio.run(main())
