"""R17: one recorded object holds a session's request (issue 13, item 5).

- structurally: inside a served session the raw request record has exactly one
  referrer, the session's ``RecordedRequest``; ``Session`` has no other request
  attribute; ``ks.state.request`` *is* ``ks.state.session.request``;
- every public path from app code to the request is recorded, and a page that
  read a value the reuse key ignores is never cached;
- ``ks.state.session_info`` carries no request data of other sessions;
- ``--reuse-sessions=verify`` never serves a page that differs from a fresh render.
"""
from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest

import kernelstate as ks
from kernelstate.request import RecordedRequest, RequestInfo
from kernelstate.testing import ProtocolClient

from .conftest import run

PATHS: dict[str, tuple[Callable[[], Any], tuple[str, str | None]]] = {
    "state.session_args[k]": (lambda: ks.state.session_args["k"], ("args", "k")),
    "state.headers[k]": (lambda: ks.state.headers["X-K"], ("headers", "X-K")),
    "state.cookies[k]": (lambda: ks.state.cookies["k"], ("cookies", "k")),
    "state.cookies iterated": (lambda: list(ks.state.cookies.items()), ("cookies", None)),
    "state.user": (lambda: ks.state.user, ("user", None)),
    "state.request.path": (lambda: ks.state.request.path, ("path", None)),
    "state.request.url": (lambda: ks.state.request.url, ("url", None)),
    "state.request.remote_ip": (lambda: ks.state.request.remote_ip, ("remote_ip", None)),
    "state.request.headers.get": (lambda: ks.state.request.headers.get("X-K"), ("headers", "X-K")),
    "state.request repr": (lambda: repr(ks.state.request), ("request", None)),
    "state.request.snapshot()": (lambda: ks.state.request.snapshot().cookies, ("request", None)),
    "state.session.request.args": (lambda: dict(ks.state.session.request.args), ("args", None)),
    "state.session.request_reads": (lambda: ks.state.session.request.cookies.get("k"), ("cookies", "k")),
}


@pytest.mark.parametrize("name", list(PATHS))
def test_every_public_path_is_recorded(name: str) -> None:
    read, expected = PATHS[name]
    session = ks.Session(RequestInfo(args={"k": [b"v"]}, headers={"X-K": "v"}, cookies={"k": "v"},
                                     path="/app", url="http://h/app?k=v", user="u", remote_ip="1.2.3.4"))
    from kernelstate.context import activate

    with activate(session):
        assert session.request_reads == frozenset()
        read()
    assert expected in session.request_reads
    session.destroy()


def test_the_request_has_one_holder_in_a_served_session(ks_server: Any) -> None:
    """gc finds exactly one object holding the raw record: the session's RecordedRequest."""
    seen: dict[str, Any] = {}

    def app() -> Any:
        session = ks.state.session
        assert ks.state.request is session.request and isinstance(session.request, RecordedRequest)
        assert not hasattr(session, "request_info")
        holders = [r for r in gc.get_referrers(*[o for o in gc.get_objects() if isinstance(o, RequestInfo)
                                                if o.path.endswith("/one")])
                   if not isinstance(r, (list, tuple)) or r is not seen]
        # The page request's own call stack (coroutine frames creating this session, and the closure
        # cell of the job that creates it) holds it until the page is answered; no object app code
        # can reach does, apart from the RecordedRequest.
        seen["holders"] = [type(h).__name__ for h in holders
                           if type(h).__name__ not in ("frame", "coroutine", "cell")]
        seen["reads_before_app_code"] = set(session.request_reads)
        return ks.pane.Str("one")

    server = ks_server({"one": app})

    async def main() -> None:
        tab = ProtocolClient(server.url + "one?k=v")
        await tab.fetch_page()

    run(main)
    assert seen["holders"] == ["RecordedRequest"], seen
    assert seen["reads_before_app_code"] == set()


def test_session_info_holds_no_request_data(ks_server: Any) -> None:
    """Records name the app route and times only: no user agent, path as requested, query or user."""
    seen: list[dict[str, Any]] = []

    def app() -> Any:
        seen.append(ks.state.session_info)
        return ks.pane.Str("x")

    server = ks_server({"info": app})

    async def main() -> None:
        tab = ProtocolClient(server.url + "info?secret=S3CR3T", headers={"User-Agent": "Agent-S3CR3T"})
        await tab.fetch_page()

    run(main)
    text = repr(seen[-1])
    assert "S3CR3T" not in text
    records = [r for r in seen[-1]["sessions"].values() if r["path"] == "/info"]
    assert records and all(set(r) == {"id", "path", "created", "rendered", "ended"} for r in records)


def test_verify_mode_never_serves_a_page_that_differs(ks_server: Any) -> None:
    """An app whose page changes between renders: every verify-mode hit shows what a fresh render shows."""
    def app() -> Any:
        n = ks.state.cache.get("r17-count", 0) + 1
        ks.state.cache["r17-count"] = n
        ks.state.template.title = f"render {n}"
        return ks.pane.Str(f"render {n}")

    server = ks_server(app, reuse_sessions="verify")

    async def main() -> list[str]:
        titles = []
        for _ in range(3):
            tab = ProtocolClient(server.url)
            await tab.fetch_page()
            titles.append(tab.html.split("<title>", 1)[1].split("</title>", 1)[0])
            await tab.connect()
            assert f"{titles[-1]}" in tab.text()
            await tab.close()
        return titles

    try:
        titles = run(main)
    finally:
        ks.state.cache.pop("r17-count", None)
    assert titles == ["render 1", "render 2", "render 3"], titles
    assert any("title differs" in d for d in server.reuse.differences)


def test_hooks_audit_without_disabling_reuse(ks_server: Any) -> None:
    """A created hook reads the request through ``audit()`` (not recorded); app code cannot."""
    audited: list[str] = []

    def hook(session: Any) -> None:
        audited.append(session.request.audit().headers.get("User-Agent", ""))

    def app() -> Any:
        with pytest.raises(RuntimeError, match="hooks"):
            ks.state.request.audit()
        return ks.pane.Str("audited")

    ks.state.on_session_created(hook)
    try:
        server = ks_server({"audited": app}, reuse_sessions=True)

        async def main() -> None:
            for _ in range(2):
                tab = ProtocolClient(server.url + "audited", headers={"User-Agent": "R17-agent"})
                await tab.fetch_page()
                await tab.connect()
                assert "audited" in tab.visible_text()
                await tab.close()

        run(main)
    finally:
        from kernelstate.session import hooks

        hooks.created.remove(hook)
    assert audited == ["R17-agent", "R17-agent"]
    assert len(server.reuse) == 1, "an auditing hook must not make the page uncacheable"
