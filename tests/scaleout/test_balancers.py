"""Issue 18 item 3: three `kernelstate serve` processes behind real HAProxy and nginx (deploy/ templates).

The processes share KERNELSTATE_SECRET_KEY and run with --stateless-pages --use-xheaders, so a tab's
page and WebSocket may reach different processes. One set of processes and balancers for the module.
"""
from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import Slider
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from kernelstate.testing import ProtocolClient
from kernelstate.testing.client import token_from_html
from kernelstate.testing.plugin import ServeProcess, start_serve_process

from .support import (
    SECRET,
    Balancer,
    free_port,
    have_balancers,
    many,
    open_tab_and_change,
    pids_by_session,
    runs_by_session,
    start_haproxy,
    start_nginx,
    write_apps,
)

CHROMIUM = os.environ.get("KERNELSTATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
pytestmark = pytest.mark.skipif(have_balancers() is not None, reason=str(have_balancers()))
TABS = 100


@dataclass
class Cluster:
    processes: list[ServeProcess]
    haproxy: Balancer
    sticky: Balancer
    nginx: Balancer
    log: Path
    apps: tuple[Path, Path]


def serve_args(apps: tuple[Path, Path], *extra: str) -> list[str]:
    return [str(apps[0]), str(apps[1]), "--max-sessions-per-client", "0", "--unused-session-lifetime", "3000",
            "--check-unused-sessions", "1000", *extra]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("balancers")
    apps = write_apps(work)
    log = work / "runs.log"
    ports = {name: free_port() for name in ("haproxy", "sticky", "nginx")}
    hosts = [arg for port in ports.values() for arg in ("--allow-host", f"127.0.0.1:{port}")]
    args = serve_args(apps, "--stateless-pages", "--use-xheaders", *hosts)
    env = {"KERNELSTATE_SECRET_KEY": SECRET, "ANYPROC_LOG": str(log), "XDG_RUNTIME_DIR": str(work)}
    with ThreadPoolExecutor(3) as pool:
        processes = list(pool.map(lambda _: start_serve_process(*args, env=env), range(3)))
    balancers: list[Balancer] = []
    try:
        backends = [p.port for p in processes]
        balancers.append(start_haproxy(work, ports["haproxy"], backends))
        balancers.append(start_haproxy(work, ports["sticky"], backends, sticky=True))
        balancers.append(start_nginx(work / "nginx", ports["nginx"], backends))
        yield Cluster(processes, *balancers, log=log, apps=apps)
    finally:
        for balancer in balancers:
            balancer.stop()
        for proc in processes:
            proc.stop()


def run_tabs(cluster: Cluster, balancer: Balancer, first_value: int) -> list[Any]:
    url = balancer.url + "/app"

    async def main() -> list[Any]:
        return await many(TABS, 10, lambda i: open_tab_and_change(url, first_value + i, origin=balancer.url))

    return asyncio.run(main())


def check_each_tab_ran_once(cluster: Cluster, results: list[Any]) -> None:
    errors = [r.error for r in results if r.error]
    assert not errors, f"{len(errors)} of {len(results)} tabs failed; first: {errors[:3]}"
    runs = runs_by_session(cluster.log)
    tabs = {r.session_id for r in results}
    assert len(tabs) == len(results)
    twice = {sid: n for sid, n in runs.items() if sid in tabs and n != 1}
    assert not twice and all(sid in runs for sid in tabs), twice
    # Renders made only to fill a page cache: at most one per key (/app) per process, for the whole module.
    fills = [sid for sid in runs if not any(sid in seen for seen in _tab_ids)]
    assert len(fills) <= len(cluster.processes), fills
    pids = pids_by_session(cluster.log)
    assert len({pids[sid] for sid in tabs}) == len(cluster.processes), "round-robin reaches every process"


_tab_ids: list[set[str]] = []


def test_100_tabs_through_round_robin_haproxy(cluster: Cluster) -> None:
    results = run_tabs(cluster, cluster.haproxy, 100)
    _tab_ids.append({r.session_id for r in results})
    check_each_tab_ran_once(cluster, results)


def test_100_tabs_through_round_robin_nginx(cluster: Cluster) -> None:
    results = run_tabs(cluster, cluster.nginx, 300)
    _tab_ids.append({r.session_id for r in results})
    check_each_tab_ran_once(cluster, results)


def test_cookie_sticky_haproxy_keeps_a_tab_on_its_process(cluster: Cluster) -> None:
    """With the sticky variant the page's cookie sends the WebSocket to the process that served the page."""
    by_name = {f"ks{i}": proc.proc.pid for i, proc in enumerate(cluster.processes, 1)}
    url = cluster.sticky.url + "/app"

    async def one(i: int) -> tuple[str, str]:
        response = await AsyncHTTPClient().fetch(HTTPRequest(url, request_timeout=20))
        cookie = response.headers.get("Set-Cookie", "")
        match = re.match(r"KSPROCESS=(ks\d)", cookie)
        assert match is not None, cookie
        tab = ProtocolClient(url, timeout=20, headers={"Cookie": f"KSPROCESS={match.group(1)}"},
                             origin=cluster.sticky.url)
        tab.html, tab.token = response.body.decode(), token_from_html(response.body.decode())
        async with tab:   # connects with the token already set
            await tab.set(tab.find(Slider)[0], "value", 700 + i)
            await tab.wait_for(lambda: f"value={700 + i};" in tab.text())
        return match.group(1), tab.session_id

    async def main() -> list[tuple[str, str]]:
        return list(await asyncio.gather(*[one(i) for i in range(9)]))

    results = asyncio.run(main())
    pids = pids_by_session(cluster.log)
    assert {name for name, _ in results} == set(by_name), "the cookie names every process in turn"
    assert all(pids[sid] == by_name[name] for name, sid in results), (results, by_name)
    _tab_ids.append({sid for _, sid in results})


@pytest.mark.parametrize("balancer", ["haproxy", "nginx"])
def test_use_xheaders_takes_the_client_from_the_balancer(cluster: Cluster, balancer: str) -> None:
    """--use-xheaders: the app's ks.state.request has the address the balancer saw (a tab from 127.0.0.2)."""
    front: Balancer = getattr(cluster, balancer)

    async def main() -> str:
        async with ProtocolClient(front.url + "/whoami", network_interface="127.0.0.2", origin=front.url) as tab:
            await tab.wait_for(lambda: "ip=" in tab.text())
            return tab.text()

    text = asyncio.run(main())
    assert "ip=127.0.0.2;" in text, text
    assert f"url=http://127.0.0.1:{front.port}/whoami;" in text, text


def test_forwarded_headers_are_ignored_without_use_xheaders(cluster: Cluster) -> None:
    """A client's own X-Forwarded-* headers change nothing on a server started without the flag."""
    proc = start_serve_process(*serve_args(cluster.apps, "--stateless-pages"),
                               env={"KERNELSTATE_SECRET_KEY": SECRET, "ANYPROC_LOG": str(cluster.log),
                                    "XDG_RUNTIME_DIR": str(cluster.log.parent)})
    try:
        url = f"http://127.0.0.1:{proc.port}/whoami"
        forged = {"X-Forwarded-For": "203.0.113.9", "X-Real-Ip": "203.0.113.9", "X-Forwarded-Proto": "https"}

        async def main() -> str:
            async with ProtocolClient(url, headers=forged) as tab:
                await tab.wait_for(lambda: "ip=" in tab.text())
                return tab.text()

        text = asyncio.run(main())
        assert "ip=127.0.0.1;" in text and f"url=http://127.0.0.1:{proc.port}/whoami;" in text, text
    finally:
        proc.stop()


@pytest.mark.parametrize("balancer", ["nginx", "haproxy"])
def test_chromium_tabs_through_a_round_robin_balancer(cluster: Cluster, balancer: str) -> None:
    """Real browser tabs (page, BokehJS WebSocket with its Origin) through the balancer: each is live,
    and the app ran once for each. The browser lives only in this test (Playwright's sync API marks a
    loop as running in this thread while it is alive)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM} missing)")
    front: Balancer = getattr(cluster, balancer)
    before = runs_by_session(cluster.log)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context()
            errors: list[str] = []
            for _ in range(3):
                page = context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(front.url + "/app")
                page.get_by_role("button", name="Press").click()
                page.wait_for_selector("text=pressed 1", timeout=15000)
                assert page.locator("#ks-banner").count() == 0
            context.close()
        finally:
            browser.close()
    assert not errors, errors
    new = {sid: n for sid, n in runs_by_session(cluster.log).items() if sid not in before}
    assert len(new) == 3 and set(new.values()) == {1}, new
