"""Issue 16 item 5: ``ks.state.location`` syncs the page's URL query with parameters, both ways.

A real server (``ks_server``) and ``ProtocolClient`` tabs: the request's query sets the widgets, a
parameter change sets the hidden location model (which the browser's CustomJS writes into the URL),
a change of that model from the tab (what the page runtime sends on back/forward) sets the
parameters, and bad values are refused, logged and sent back. Chromium runs the same app in
tests/browser/test_location_in_chromium.py.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from bokeh.models import Button, MultiChoice, Slider, TextInput

import kernelstate as ks
from kernelstate.location import MODEL_NAME
from kernelstate.testing import ProtocolClient


def app() -> Any:
    text = ks.widgets.TextInput(name="Search")
    count = ks.widgets.IntSlider(name="Count", start=0, end=10, value=5)
    tags = ks.widgets.MultiChoice(name="Tags", options=["a", "b", "c"], value=[])
    day = ks.widgets.DatePicker(name="Day", value=dt.date(2024, 1, 1))
    ks.state.location.sync(text, {"value": "q"})
    ks.state.location.sync(count, {"value": "n"})
    ks.state.location.sync(tags, {"value": "tags"})
    ks.state.location.sync(day, ["value"])
    return ks.Column(text, count, tags, day)


def location_model(tab: ProtocolClient) -> TextInput:
    found = tab.find(TextInput, name=MODEL_NAME)
    assert len(found) == 1, [m.name for m in tab.find(TextInput)]
    model = found[0]
    assert isinstance(model, TextInput)
    return model


def synced(tab: ProtocolClient) -> dict[str, list[str]] | str:
    """The query the server last told the browser to show (the raw value while it is not JSON)."""
    raw = location_model(tab).value
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    assert isinstance(value, dict)
    return value


def query(tab: ProtocolClient) -> dict[str, list[str]]:
    value = synced(tab)
    assert isinstance(value, dict), value
    return value


def widget(tab: ProtocolClient, kind: type[Any], title: str) -> Any:
    return next(m for m in tab.find(kind) if m.title == title)


def test_the_request_query_sets_the_widgets_and_the_location_model(ks_server: Any) -> None:
    """?q=hello&n=3&tags=a&tags=c&value=2024-05-01 opens with those values; the model is the last root, hidden."""
    server = ks_server(app)

    async def main() -> None:
        url = server.url + "?q=hello&n=3&tags=a&tags=c&value=2024-05-01&other=kept"
        async with ProtocolClient(url) as tab:
            assert widget(tab, TextInput, "Search").value == "hello"
            assert widget(tab, Slider, "Count").value == 3
            assert widget(tab, MultiChoice, "Tags").value == ["a", "c"]
            model = location_model(tab)
            assert synced(tab) == {"q": ["hello"], "n": ["3"], "tags": ["a", "c"], "value": ["2024-05-01"]}
            assert model.visible is False
            assert tab.document.roots[-1] is model and len(tab.document.roots) == 2
            assert "other" not in synced(tab)

    asyncio.run(main())


def test_a_parameter_change_updates_the_location_model(ks_server: Any) -> None:
    """Server -> browser: typing in the widget (a PATCH-DOC) changes the query the browser is told to show;
    a value back at its synced-time default leaves the name out."""
    server = ks_server(app)

    async def main() -> None:
        async with ProtocolClient(server.url + "?q=hello") as tab:
            patches = tab.patches_received
            await tab.set(widget(tab, TextInput, "Search"), "value", "world")
            await tab.wait_for(lambda: query(tab).get("q") == ["world"])
            assert tab.patches_received > patches
            await tab.set(widget(tab, Slider, "Count"), "value", 7)
            await tab.wait_for(lambda: query(tab).get("n") == ["7"])
            await tab.set(widget(tab, Slider, "Count"), "value", 5)
            await tab.wait_for(lambda: query(tab).get("n") == [])
            await tab.set(widget(tab, MultiChoice, "Tags"), "value", ["b"])
            await tab.wait_for(lambda: query(tab).get("tags") == ["b"])
            assert synced(tab) == {"q": ["world"], "n": [], "tags": ["b"], "value": []}

    asyncio.run(main())


def test_a_browser_query_change_sets_the_parameters(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Browser -> server: the model's value from the tab (back/forward) sets the widgets; refused values are
    logged once and the accepted query is sent back; a name missing from the URL means its synced-time value."""
    server = ks_server(app)
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        async with ProtocolClient(server.url + "?q=hello&n=3") as tab:
            model = location_model(tab)
            sent = {"q": ["back"], "n": ["abc"], "tags": ["c", "nope"], "value": ["2024-02-30"]}
            await tab.set(model, "value", json.dumps(sent))
            await tab.wait_for(lambda: widget(tab, TextInput, "Search").value == "back")
            await tab.wait_for(lambda: synced(tab) == {"q": ["back"], "n": ["3"], "tags": [], "value": []})
            assert widget(tab, Slider, "Count").value == 3 and widget(tab, MultiChoice, "Tags").value == []

            await tab.set(model, "value", json.dumps({"q": [], "n": ["11"]}))  # 11 is over end=10
            await tab.wait_for(lambda: widget(tab, TextInput, "Search").value == "")
            await tab.wait_for(lambda: synced(tab) == {"q": [], "n": ["3"], "tags": [], "value": []})

            await tab.set(model, "value", "not json")
            await tab.wait_for(lambda: synced(tab) == {"q": [], "n": ["3"], "tags": [], "value": []})

    asyncio.run(main())
    refused = [r.getMessage() for r in caplog.records if "refused browser value" in r.getMessage()]
    assert any("IntSlider.value" in m and "n=abc" in m and "not a whole number" in m for m in refused), refused
    assert any("MultiChoice.value" in m and "'nope' is not one of the options" in m for m in refused), refused
    assert any("DatePicker.value" in m and "2024-02-30" in m for m in refused), refused
    assert any("Location.query" in m for m in refused), refused
    assert sum("IntSlider.value" in m for m in refused) == 1, refused  # the second refusal is counted, not logged


def test_bad_query_values_are_ignored_with_a_log_line(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """?n=abc and an out-of-bounds ?n= never fail the page: the widget keeps its value and the log says why."""
    server = ks_server(app)
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        for query in ("?n=abc&q=ok", "?n=99&q=ok", "?n=1.5&q=ok"):
            async with ProtocolClient(server.url + query) as tab:
                assert tab.status == 200
                assert widget(tab, Slider, "Count").value == 5 and widget(tab, TextInput, "Search").value == "ok"

    asyncio.run(main())
    refused = [r.getMessage() for r in caplog.records if "refused browser value" in r.getMessage()]
    assert any("n=abc" in m for m in refused) and any("n=99" in m for m in refused), refused
    assert any("n=1.5" in m for m in refused), refused


@pytest.fixture
def restore_key_func() -> Iterator[None]:
    yield
    ks.config.set("session_key_func", None, process=True)


def test_reuse_sessions_never_mixes_up_visitors_queries(ks_server: Any, caplog: pytest.LogCaptureFixture,
                                                        restore_key_func: None) -> None:
    """With --reuse-sessions the read of ?q= is recorded: under the default key (the path) the page is not
    cached, with a key covering q it is; either way each visitor sees their own value."""
    def search_app() -> Any:
        text = ks.widgets.TextInput(name="Search")
        ks.state.location.sync(text, {"value": "q"})
        return text

    async def visitors(url: str) -> list[str]:
        seen = []
        for q in ("alpha", "beta", "alpha", "beta"):
            async with ProtocolClient(url + "?q=" + q) as tab:
                seen.append(widget(tab, TextInput, "Search").value)
                assert query(tab) == {"q": [q]}
        return seen

    server = ks_server(search_app, reuse_sessions=True)
    with caplog.at_level(logging.WARNING, "kernelstate.reuse"):
        assert asyncio.run(visitors(server.url)) == ["alpha", "beta", "alpha", "beta"]
    warnings = [r.getMessage() for r in caplog.records if "not caching" in r.getMessage()]
    assert warnings and "ks.state.session_args['q']" in warnings[0], warnings
    assert len(server.reuse) == 0 and server.reuse.hits == 0

    def key(request: Any) -> Any:
        return request.path, request.query_arguments.get("q", [b""])[0]

    ks.extension(session_key_func=key)
    keyed = ks_server(search_app, reuse_sessions=True)
    assert asyncio.run(visitors(keyed.url)) == ["alpha", "beta", "alpha", "beta"]
    assert len(keyed.reuse) == 2 and keyed.reuse.hits == 2


def test_sync_after_the_page_loaded_and_unsync(ks_server: Any) -> None:
    """A sync in a callback adds the model then (as the last root); after unsync changes stay off the URL."""
    def late_app() -> Any:
        text = ks.widgets.TextInput(name="Search")
        sync, unsync = ks.widgets.Button(name="Sync"), ks.widgets.Button(name="Unsync")
        sync.on_click(lambda event: ks.state.location.sync(text, {"value": "q"}))
        unsync.on_click(lambda event: ks.state.location.unsync(text))
        return ks.Column(text, sync, unsync)

    server = ks_server(late_app)

    async def main() -> None:
        async with ProtocolClient(server.url + "?q=late") as tab:
            assert not tab.find(TextInput, name=MODEL_NAME)
            buttons = {b.label: b for b in tab.find(Button)}
            await tab.click(buttons["Sync"])
            await tab.wait_for(lambda: bool(tab.find(TextInput, name=MODEL_NAME)))
            assert widget(tab, TextInput, "Search").value == "late" and tab.document.roots[-1] is location_model(tab)
            await tab.set(widget(tab, TextInput, "Search"), "value", "typed")
            await tab.wait_for(lambda: synced(tab) == {"q": ["typed"]})
            await tab.click(buttons["Unsync"])
            await tab.wait_for(lambda: synced(tab) == {})
            await tab.set(widget(tab, TextInput, "Search"), "value", "after")
            await tab.set(buttons["Sync"], "label", "Sync")  # one more round trip: anything pending has arrived
            assert synced(tab) == {}

    asyncio.run(main())


def test_sync_in_a_notebook_cell_does_nothing_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    """Outside a served page (the kernel session) sync and unsync do nothing; one warning for the process."""
    from kernelstate import location as location_module

    location_module._say_needs_a_served_page.cache_clear()  # other tests may have said it already
    text = ks.widgets.TextInput(name="Search", value="kept")
    caplog.set_level(logging.WARNING, "kernelstate.location")
    ks.state.location.sync(text, {"value": "q"})
    ks.state.location.sync(text, {"value": "q"})
    ks.state.location.unsync(text)
    text.value = "changed"
    assert ks.state.location.query == {} and ks.state.location.model is None
    said = [r.getMessage() for r in caplog.records if "needs a page served by kernelstate" in r.getMessage()]
    assert len(said) == 1, said


def test_sync_refuses_unknown_parameters_and_taken_names(ks_server: Any) -> None:
    """Mistakes in sync() are errors naming the parameter or query name (the app's error page, not silence)."""
    errors: list[str] = []

    def mistaken_app() -> Any:
        text = ks.widgets.TextInput(name="Search")
        other = ks.widgets.TextInput(name="Other")
        ks.state.location.sync(text, {"value": "q"})
        for args in ((text, {"valu": "x"}), (other, {"value": "q"}), (text, {"value": "again"})):
            try:
                ks.state.location.sync(*args)
            except ValueError as exc:
                errors.append(str(exc))
        return text

    server = ks_server(mistaken_app)

    async def main() -> None:
        async with ProtocolClient(server.url):
            pass

    asyncio.run(main())
    assert "has no parameter 'valu'" in errors[0]
    assert "'q' is already synced with TextInput.value" in errors[1]
    assert "TextInput.value is already synced" in errors[2]
