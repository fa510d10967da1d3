"""Issue 14: the reuse warning suggests a key built from what the app read; hooks that look at the
request do not switch reuse off."""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

import kernelstate as ks
from kernelstate.session import hooks
from kernelstate.testing import ProtocolClient


async def pages(url: str, n: int = 2, headers: dict[str, str] | None = None) -> list[str]:
    return [await ProtocolClient(url, headers=headers).fetch_page() for _ in range(n)]


@pytest.fixture
def restore_key_func() -> Iterator[None]:
    yield
    ks.config.set("session_key_func", None, process=True)


def test_warning_suggests_a_key_from_the_values_read(ks_server: Any, caplog: pytest.LogCaptureFixture,
                                                     restore_key_func: None) -> None:
    """The suggested key names the query argument and cookie the app read, and using it makes the page cacheable."""
    def app() -> Any:
        region = ks.state.session_args.get("region", [b"north"])[0].decode()
        theme = ks.state.cookies.get("theme", "light")
        return ks.pane.Markdown(f"{region} in {theme}")

    server = ks_server(app, reuse_sessions=True)
    with caplog.at_level(logging.WARNING, "kernelstate.reuse"):
        asyncio.run(pages(server.url + "?region=south", headers={"Cookie": "theme=dark"}))
    warnings = [r.getMessage() for r in caplog.records if "not caching" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "query_arguments.get('region'" in warnings[0] and "r.cookies['theme']" in warnings[0]
    assert "city" not in warnings[0]
    assert len(server.reuse) == 0

    suggestion = re.search(r"(def key\(r\):.*ks\.extension\(session_key_func=key\))", warnings[0], re.DOTALL)
    assert suggestion is not None, warnings[0]
    exec(suggestion.group(1), {"ks": ks})  # noqa: S102 (running the suggested key is the point)
    fixed = ks_server(app, reuse_sessions=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, "kernelstate.reuse"):
        asyncio.run(pages(fixed.url + "?region=south", headers={"Cookie": "theme=dark"}))
        asyncio.run(pages(fixed.url + "?region=east", headers={"Cookie": "theme=dark"}, n=1))
    assert not [r for r in caplog.records if "not caching" in r.getMessage()]
    assert fixed.reuse.hits == 1 and len(fixed.reuse) == 2

    async def live() -> str:
        async with ProtocolClient(fixed.url + "?region=east", headers={"Cookie": "theme=dark"}) as tab:
            return tab.text()

    assert "east in dark" in asyncio.run(live())


@pytest.mark.parametrize("look", ["path", "audit"])
def test_an_auditing_created_hook_keeps_reuse_working(ks_server: Any, look: str) -> None:
    """A process-wide hook reading session.request.path (the tutorial's audit) or session.request.audit()
    does not make every app's page uncacheable."""
    audit: list[str] = []

    def audit_created(session: Any) -> None:
        if look == "path":
            audit.append(session.request.path)
        else:
            audit.append(session.request.audit().headers.get("User-Agent", "?"))

    hooks.add_created(audit_created)
    try:
        server = ks_server({"audited": lambda: ks.pane.Markdown("audited")}, reuse_sessions=True)
        asyncio.run(pages(server.url + "audited", n=3))
    finally:
        hooks.created.remove(audit_created)
    assert audit, "the hook never ran"
    assert len(server.reuse) == 1 and server.reuse.hits == 2


def test_reading_the_request_path_in_app_code_is_covered_by_the_default_key(ks_server: Any) -> None:
    """ks.state.request.path depends on the path only: the default key (the path) covers it."""
    server = ks_server({"where": lambda: ks.pane.Markdown(f"at {ks.state.request.path}")}, reuse_sessions=True)
    asyncio.run(pages(server.url + "where"))
    assert server.reuse.hits == 1 and len(server.reuse) == 1


def test_reading_the_request_url_still_blocks_caching(ks_server: Any) -> None:
    """The URL (query included) cannot be probed: reading it keeps the page uncached."""
    server = ks_server({"url": lambda: ks.pane.Markdown(f"at {ks.state.request.url}")}, reuse_sessions=True)
    asyncio.run(pages(server.url + "url?a=1"))
    assert len(server.reuse) == 0
