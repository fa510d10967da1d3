"""Issue 18 item 5: offload to a real Dask LocalCluster (and to a ThreadPoolExecutor).

One LocalCluster (2 worker processes, 1 thread each, all on 127.0.0.1) is shared by the module.
The offloaded functions live in cluster_support, pickled by value so the workers need no test path.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from bokeh.models import Button

import kernelstate as ks
from kernelstate.cluster.offload import OffloadedJob
from kernelstate.testing import ProtocolClient

from . import cluster_support
from .cluster_support import boom, sleep_then, square, until_cancelled, wait_until

DASK_APP = '''
import kernelstate as ks

def cube(x):   # defined in the app: pickled by value, run on a worker
    return x ** 3

out = ks.pane.Str("no result yet")
button = ks.widgets.Button(name="compute")

async def compute(event):
    result = await ks.state.execute(cube, 7, schedule="dask")
    out.object = f"result {result}"

button.on_click(compute)
ks.Column(out, button).servable()
'''


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    cloudpickle.register_pickle_by_value(cluster_support)
    local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    yield local
    local.close()
    cloudpickle.unregister_pickle_by_value(cluster_support)


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    from distributed import Client

    dask = Client(cluster, set_as_default=False)
    yield dask
    dask.close()


def offloaded(session: ks.Session) -> list[OffloadedJob]:
    return [job for job in session.scheduler.owned if isinstance(job, OffloadedJob)]


def test_offloaded_result_reaches_the_tab(cluster: Any, ks_serve_process: Any, tmp_path: Path) -> None:
    app = tmp_path / "dask_app.py"
    app.write_text(DASK_APP)
    proc = ks_serve_process(str(app), "--dask-scheduler", cluster.scheduler_address)

    async def main() -> str:
        async with ProtocolClient(proc.url) as tab:
            await tab.click(tab.find(Button)[0])
            await tab.wait_for(lambda: "result 343" in tab.text(), timeout=30)
            return tab.text()

    assert "result 343" in asyncio.run(main())


def test_destroying_the_session_cancels_pending_work_drops_results_and_signals(client: Any, ks_server: Any,
                                                                              tmp_path: Path) -> None:
    progress = tmp_path / "progress.txt"
    seen: dict[str, Any] = {}

    def app() -> Any:
        session = ks.state.session
        seen["session"] = session
        seen["results"] = []
        futures = [ks.state.execute(until_cancelled, str(progress), schedule=client),   # worker 1, checks the signal
                   ks.state.execute(sleep_then, 5, 1.5, schedule=client),             # worker 2, does not
                   ks.state.execute(square, 3, schedule=client),                      # pending: both workers busy
                   ks.state.execute(square, 4, schedule=client)]
        for future in futures:
            future.add_done_callback(lambda f: seen["results"].append(f))
        return ks.pane.Str("offloading")

    server = ks_server(app)

    async def open_tab() -> None:
        async with ProtocolClient(server.url):
            pass

    asyncio.run(open_tab())
    session = seen["session"]
    jobs = sorted(offloaded(session), key=lambda job: job.what)
    assert len(jobs) == 4
    wait_until(lambda: progress.exists() and sum(len(keys) for keys in client.processing().values()) >= 2, 20,
               "both workers run an offloaded function")
    destroyed_at = time.time()
    server.loop.call_soon_threadsafe(server.manager.destroy, session.id)
    wait_until(lambda: "stopped" in progress.read_text(), 5, "the function checking ks.cancellation() stops")
    stopped_at = float(progress.read_text().split("stopped ")[1])
    assert stopped_at - destroyed_at < 1.0, f"stopped {stopped_at - destroyed_at:.2f} s after the session ended"
    wait_until(lambda: all(job.future.status == "cancelled" for job in jobs), 10, "every Dask future is cancelled")
    time.sleep(2.0)   # sleep_then (1.5 s) has finished on its worker by now
    assert not [f for f in seen["results"] if not f.cancelled()], "a result reached the destroyed session"
    assert all(job.result.cancelled() for job in jobs)
    assert not offloaded(session)


def test_executor_offload_failure_logging_and_thread_cancellation(client: Any, ks_server: Any, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    pool = ThreadPoolExecutor(2, thread_name_prefix="test-offload")
    progress = tmp_path / "progress-thread.txt"
    seen: dict[str, Any] = {}

    def app() -> Any:
        seen["session"] = ks.state.session
        out = ks.pane.Str("no result yet")
        button = ks.widgets.Button(name="compute")

        async def compute(event: Any) -> None:
            out.object = f"result {await ks.state.execute(square, 6, schedule=pool)}"
            try:
                await ks.state.execute(boom, 1, schedule=client)
            except ValueError as exc:
                out.object += f", dask raised {exc}"
            ks.state.execute(until_cancelled, str(progress), schedule=pool)

        button.on_click(compute)
        return ks.Column(out, button)

    server = ks_server(app)

    async def main() -> tuple[str, str]:
        async with ProtocolClient(server.url) as tab:
            await tab.click(tab.find(Button)[0])
            await tab.wait_for(lambda: "dask raised boom 1" in tab.text(), timeout=30)
            return tab.text(), tab.session_id

    with caplog.at_level(logging.ERROR, "kernelstate.application"):
        text, session_id = asyncio.run(main())
    assert "result 36, dask raised boom 1" in text
    assert any(f"offloaded boom (on dask) failed (session={session_id})" in r.getMessage() for r in caplog.records)
    wait_until(lambda: progress.exists(), 5, "the thread function started")
    destroyed_at = time.time()
    server.loop.call_soon_threadsafe(server.manager.destroy, seen["session"].id)
    wait_until(lambda: "stopped" in progress.read_text(), 5, "the thread function checking ks.cancellation() stops")
    assert float(progress.read_text().split("stopped ")[1]) - destroyed_at < 1.0
    pool.shutdown(wait=True)
