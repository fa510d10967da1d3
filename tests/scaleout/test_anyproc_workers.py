"""Issue 18 item 1: `kernelstate serve APP --num-procs 2`: two workers on one port, any worker serves any request.

One server for the module (--warm, --setup, --drain-timeout); the last test stops it with SIGTERM.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from bokeh.models import Slider
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from kernelstate.testing import ProtocolClient
from kernelstate.testing.plugin import ServeProcess, start_serve_process

from .support import SECRET, many, open_tab_and_change, pids_by_session, runs_by_session, write_apps

TABS = 30
SETUP = '''import os
with open(os.environ["ANYPROC_SETUP_LOG"], "a") as log:
    log.write(f"{os.getpid()}\\n")
'''


@dataclass
class Workers:
    proc: ServeProcess
    log: Path
    setup_log: Path
    tab_ids: set[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proc.port}"

    def worker_pids(self) -> set[int]:
        return {child.pid for child in psutil.Process(self.proc.proc.pid).children()}


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    work = tmp_path_factory.mktemp("workers")
    app, _ = write_apps(work)
    setup = work / "setup.py"
    setup.write_text(SETUP)
    log, setup_log = work / "runs.log", work / "setup.log"
    proc = start_serve_process(str(app), "--num-procs", "2", "--warm", "--setup", str(setup), "--drain-timeout", "2",
                               "--max-sessions-per-client", "0",
                               env={"KERNELSTATE_SECRET_KEY": SECRET, "ANYPROC_LOG": str(log),
                                    "ANYPROC_SETUP_LOG": str(setup_log), "XDG_RUNTIME_DIR": str(work)})
    try:
        yield Workers(proc, log, setup_log, set())
    finally:
        proc.stop()


def test_two_workers_serve_30_tabs_each_app_run_once(workers: Workers) -> None:
    async def main() -> list:  # type: ignore[type-arg]
        return await many(TABS, 6, lambda i: open_tab_and_change(workers.url + "/app", 10 + i))

    results = asyncio.run(main())
    errors = [r.error for r in results if r.error]
    assert not errors, f"{len(errors)} of {TABS} tabs failed; first: {errors[:3]}"
    runs = runs_by_session(workers.log)
    tabs = {r.session_id for r in results}
    workers.tab_ids |= tabs
    assert all(runs[sid] == 1 for sid in tabs), {sid: runs[sid] for sid in tabs if runs[sid] != 1}
    fills = set(runs) - workers.tab_ids
    assert len(fills) <= 2, f"renders only to fill the page cache: at most one per worker, got {len(fills)}"
    pids = pids_by_session(workers.log)
    assert {pids[sid] for sid in tabs} == workers.worker_pids(), "the kernel hands tabs to both workers"


def test_one_banner_warm_and_setup_in_each_worker(workers: Workers) -> None:
    text = workers.proc.log_text()
    assert text.count("serving 1 app(s) on") == 1, text
    assert "with 2 worker processes" in text
    assert text.count("warmed 1 app(s)") == 2, text
    setup_pids = workers.setup_log.read_text().split()
    assert len(setup_pids) == 2 and {int(p) for p in setup_pids} == workers.worker_pids()


def test_readiness_answers_200_while_serving(workers: Workers) -> None:
    async def main() -> tuple[int, dict]:  # type: ignore[type-arg]
        response = await AsyncHTTPClient().fetch(HTTPRequest(workers.url + "/readiness", request_timeout=10))
        return response.code, json.loads(response.body)

    code, body = asyncio.run(main())
    assert code == 200 and body["ready"] is True and body["pid"] in workers.worker_pids()


def test_a_killed_worker_is_restarted_and_logged(workers: Workers) -> None:
    """SIGKILL one worker under open tabs: the supervisor restarts it and logs it; the other worker's tabs
    carry on; new tabs work. Tabs of the killed worker reconnect (as BokehJS does, with the page's token)
    and get their session back from the workers' shared store, with the value they had."""
    async def main() -> None:
        tabs = []
        for i in range(8):
            tab = ProtocolClient(workers.url + "/app", timeout=20)
            await tab.open()
            await tab.set(tab.find(Slider)[0], "value", 500 + i)
            tabs.append(tab)
        workers.tab_ids.update(tab.session_id for tab in tabs)
        await asyncio.sleep(1.0)   # store records are written at most every 200 ms per session
        pids = pids_by_session(workers.log)
        victim = pids[tabs[0].session_id]
        before = workers.worker_pids()
        psutil.Process(victim).send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = workers.worker_pids()
            if len(now) == 2 and victim not in now and "restarted it as pid" in workers.proc.log_text():
                break
            await asyncio.sleep(0.1)
        now = workers.worker_pids()
        assert len(now) == 2 and victim not in now, (before, now)
        assert f"(pid {victim}) killed by signal 9 (SIGKILL); restarted it as pid" in workers.proc.log_text()
        for i, tab in enumerate(tabs):
            if pids[tab.session_id] == victim:
                code, _ = await tab.wait_closed(10)
                assert code in (None, 1006), code
                retry = ProtocolClient(workers.url + "/app", timeout=20)
                retry.token = tab.token
                await retry.connect()
                assert retry.find(Slider)[0].value == 500 + i, "the recovered session lost the tab's value"
                await retry.set(retry.find(Slider)[0], "value", 700 + i)
                await retry.wait_for(lambda i=i, t=retry: f"value={700 + i};" in t.text())  # type: ignore[misc]
                await retry.close()
            else:
                await tab.set(tab.find(Slider)[0], "value", 900 + i)
                await tab.wait_for(lambda i=i, tab=tab: f"value={900 + i};" in tab.text())  # type: ignore[misc]
                await tab.close()
        fresh = await many(6, 3, lambda i: open_tab_and_change(workers.url + "/app", 950 + i))
        assert not [r.error for r in fresh if r.error]
        workers.tab_ids.update(r.session_id for r in fresh)

    asyncio.run(main())


def test_sigterm_drains_then_stops_every_worker(workers: Workers) -> None:
    """SIGTERM to the supervisor: /readiness answers 503 during --drain-timeout, then every worker exits."""
    pids = workers.worker_pids()
    supervisor = workers.proc.proc
    supervisor.send_signal(signal.SIGTERM)

    async def readiness() -> int:
        response = await AsyncHTTPClient().fetch(HTTPRequest(workers.url + "/readiness", request_timeout=5),
                                                 raise_error=False)
        return response.code

    deadline, code = time.monotonic() + 1.5, 0
    while code != 503 and time.monotonic() < deadline:   # the signal reaches both workers within moments
        code = asyncio.run(readiness())
    codes = {asyncio.run(readiness()) for _ in range(4)}   # the kernel picks the worker: both drain
    assert code == 503 and codes == {503}, (code, codes)
    assert supervisor.wait(20) == 0
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert "all workers stopped" in workers.proc.log_text()


def test_a_worker_failing_at_startup_stops_the_server(tmp_path: Path) -> None:
    """A --setup that raises fails every worker: the server says why and exits 1 instead of restarting them."""
    app, _ = write_apps(tmp_path)
    setup = tmp_path / "broken_setup.py"
    setup.write_text("raise RuntimeError('the database is not there')\n")
    proc = subprocess.run([sys.executable, "-m", "kernelstate.cli", "serve", str(app), "--port", "0", "--num-procs", "2",
                           "--setup", str(setup)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ANYPROC_LOG": str(tmp_path / "runs.log"), "XDG_RUNTIME_DIR": str(tmp_path)})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "the database is not there" in output and "before every worker was ready; stopping" in output, output
    assert "serving 1 app(s)" not in output
