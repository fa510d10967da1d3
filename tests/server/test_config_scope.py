"""Issue 14: every ks.config option, set in app code and set for the process, through a real server.

Options a session may override are honoured on that session's page only; process-only options
(they shape the page before app code runs, or a resource the process shares) log a warning and
change nothing when app code sets them, and take effect when set for the process.
"""
from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import kernelstate as ks
from kernelstate._config import OPTIONS, process_only_options
from kernelstate.cluster import coordinator
from kernelstate.testing import ProtocolClient
from kernelstate.threads import thread_pool

def _allow_all(user_info: Any, path: str) -> bool:
    return True


PROCESS_ONLY: dict[str, Any] = {"reuse_sessions": True, "global_loading_spinner": True, "nthreads": 3,
                                "cache_max_items": 5,
                                # kernelstate.cluster (this machine's processes through a SQLite file: no Redis
                                # needed here; a key file is kept beside it when KERNELSTATE_SECRET_KEY is unset)
                                "session_store": f"sqlite://{tempfile.gettempdir()}/kernelstate-scope-test-{os.getuid()}.db",
                                "shared_value_max_bytes": 5,
                                "dask_scheduler": "tcp://127.0.0.1:1",
                                # kernelstate.auth: asked before pages and WebSockets of servers with a login
                                "authorize_callback": _allow_all,
                                # how notebook cells go live: a kernel-wide choice
                                "comms": "relay"}


def _spinner(server: Any, html: str) -> bool:
    return 'id="ks-loading-spinner"' in html


def _reused(server: Any, html: str) -> bool:
    return len(server.reuse) == 1


def _pool(server: Any, html: str) -> bool:
    return thread_pool.size == 3


def _cache(server: Any, html: str) -> bool:
    return ks.config.cache_max_items == 5


EFFECT: dict[str, Callable[[Any, str], bool]] = {
    "reuse_sessions": _reused, "global_loading_spinner": _spinner, "nthreads": _pool, "cache_max_items": _cache,
    "session_store": lambda server, html: coordinator().url == PROCESS_ONLY["session_store"],
    "shared_value_max_bytes": lambda server, html: _shared_bound() == 5,
    "dask_scheduler": lambda server, html: ks.config.process_value("dask_scheduler") == PROCESS_ONLY["dask_scheduler"],
    "authorize_callback": lambda server, html: ks.config.process_value("authorize_callback") is _allow_all,
    "comms": lambda server, html: ks.config.process_value("comms") == "relay",
}


def _shared_bound() -> int:
    """The bound a shared value is checked against (what the coordinator reads)."""
    from kernelstate.cluster.signing import Codec

    try:
        Codec(b"k").dumps("scope", "123456", ks.config.process_value("shared_value_max_bytes"))
    except ValueError:
        return 5
    return -1

SESSION: dict[str, tuple[Any, Callable[[str], bool]]] = {
    "template": ("material", lambda html: "ks-template-material" in html),
    "title": ("Scoped title", lambda html: "<title>Scoped title</title>" in html),
    "raw_css": (".issue14-scope { color: red }", lambda html: ".issue14-scope" in html),
}


def test_every_option_has_a_declared_scope() -> None:
    """Each option is either tested here as session-scoped or declared process-only."""
    assert sorted(PROCESS_ONLY) == process_only_options()
    assert set(OPTIONS) - set(PROCESS_ONLY) == {*SESSION, "session_key_func", "exception_handler"}


@pytest.fixture
def restore_config() -> Iterator[None]:
    before = {name: ks.config.process_value(name) for name in OPTIONS}
    thread_pool.get()
    yield
    for name, value in before.items():
        ks.config.set(name, value, process=True)


async def two_pages(url: str) -> list[str]:
    pages = []
    for _ in range(2):
        tab = ProtocolClient(url)
        pages.append(await tab.fetch_page())
    return pages


@pytest.mark.parametrize("name", sorted(PROCESS_ONLY))
def test_process_only_option_in_app_code_warns_and_does_nothing(ks_server: Any, name: str, restore_config: None,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    value = PROCESS_ONLY[name]

    def app() -> Any:
        ks.extension(**{name: value})
        return ks.pane.Markdown("scoped")

    server = ks_server(app)
    with caplog.at_level(logging.WARNING, "kernelstate.config"):
        pages = asyncio.run(two_pages(server.url))
    assert any(name in r.getMessage() and "process-only" in r.getMessage() for r in caplog.records), name
    assert not EFFECT[name](server, pages[-1]), f"{name} set in app code took effect"


@pytest.mark.parametrize("name", sorted(PROCESS_ONLY))
def test_process_only_option_set_for_the_process_works(ks_server: Any, name: str, restore_config: None) -> None:
    ks.config.set(name, PROCESS_ONLY[name], process=True)
    server = ks_server(lambda: ks.pane.Markdown("scoped"))
    pages = asyncio.run(two_pages(server.url))
    assert EFFECT[name](server, pages[-1]), f"{name} set for the process had no effect"


@pytest.mark.parametrize("name", sorted(SESSION))
def test_session_option_in_app_code_applies_to_that_app_only(ks_server: Any, name: str, restore_config: None) -> None:
    value, shows = SESSION[name]
    before = ks.config.process_value(name)

    def scoped() -> Any:
        ks.config.set(name, value)
        return ks.pane.Markdown("scoped")

    server = ks_server({"scoped": scoped, "plain": lambda: ks.pane.Markdown("plain")})

    async def main() -> tuple[str, str]:
        return await ProtocolClient(server.url + "scoped").fetch_page(), await ProtocolClient(server.url + "plain").fetch_page()

    scoped_html, plain_html = asyncio.run(main())
    assert shows(scoped_html) and not shows(plain_html)
    assert ks.config.process_value(name) == before


@pytest.mark.parametrize("name", sorted(SESSION))
def test_session_option_set_for_the_process_applies_everywhere(ks_server: Any, name: str, restore_config: None) -> None:
    value, shows = SESSION[name]
    ks.config.set(name, value, process=True)
    server = ks_server({"one": lambda: ks.pane.Markdown("one"), "two": lambda: ks.pane.Markdown("two")})

    async def main() -> list[str]:
        return [await ProtocolClient(server.url + route).fetch_page() for route in ("one", "two")]

    assert all(shows(html) for html in asyncio.run(main()))
