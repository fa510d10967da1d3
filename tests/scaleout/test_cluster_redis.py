"""Issue 18 item 4: cluster-wide work through a real Redis, across 3 real `kernelstate serve` processes.

One redis-server and three processes (same KERNELSTATE_SECRET_KEY, same --session-store) are
shared by the module. The tests run in file order: the task test kills a process and the last
test stops Redis, so both come last.
"""
from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from bokeh.models import Button

from kernelstate.cluster.redis_coordinator import cache_name
from kernelstate.cluster.signing import Codec
from kernelstate.testing import ProtocolClient
from kernelstate.testing.plugin import ServeProcess, start_serve_process

from .cluster_support import RedisServer, start_redis, wait_until

SECRET = "cluster-test-secret-0123456789abcdef"

SETUP = '''
import os, time
import kernelstate as ks
from kernelstate.tasks import tasks

def tick():
    due = tasks.get("cluster-tick").occurrence   # the due time of this run
    with open(os.environ["KS_TEST_TICKS"], "a") as f:
        f.write(f"{os.getpid()} {due.timestamp():.3f} {time.time():.3f}\\n")

ks.state.schedule_task("cluster-tick", tick, period=1)
'''

PUBSUB_APP = '''
import logging, os
import kernelstate as ks

log = logging.getLogger("kernelstate.state")
out = ks.pane.Str("nothing yet")

def got(value):
    out.object = f"got {value}"
    log.info("session %s: received %s", ks.state.session_id, value)

ks.state.subscribe("news", got)
button = ks.widgets.Button(name="publish")
button.on_click(lambda event: ks.state.publish("news", f"hello from {os.getpid()}"))
ks.state.on_session_destroyed(lambda session: log.info("session %s: destroyed", session.id))
ks.Column(out, button).servable()
'''

CACHED_APP = '''
import logging, os, time
import kernelstate as ks

key = ks.state.session_args.get("key", [b"answer"])[0].decode()

def compute():
    logging.getLogger("kernelstate.state").info("computing %s in %s", key, os.getpid())
    time.sleep(1.0)
    return {"key": key, "pid": os.getpid()}

value = ks.state.as_cached(key, compute, shared=True)
ks.pane.Str(f"value {value['key']} from {value['pid']}").servable()
'''


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ticks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ticks") / "ticks.txt"


@pytest.fixture(scope="module")
def procs(store: RedisServer, ticks_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServeProcess]]:
    root = tmp_path_factory.mktemp("cluster-apps")
    apps = root / "apps"
    apps.mkdir()
    (apps / "pubsub.py").write_text(PUBSUB_APP)
    (apps / "cached.py").write_text(CACHED_APP)
    (root / "setup.py").write_text(SETUP)
    env = {"KERNELSTATE_SECRET_KEY": SECRET, "KS_TEST_TICKS": str(ticks_file)}
    args = (str(apps), "--setup", str(root / "setup.py"), "--session-store", store.url,
            "--unused-session-lifetime", "300", "--check-unused-sessions", "200")
    with ThreadPoolExecutor(3) as pool:
        started = list(pool.map(lambda _: start_serve_process(*args, env=env), range(3)))
    yield started
    for proc in started:
        proc.stop()


def log_lines(proc: ServeProcess, text: str) -> list[str]:
    return [line for line in list(proc.output) if text in line]


def test_shared_cache_computes_once_across_three_processes(procs: list[ServeProcess]) -> None:
    async def main() -> list[str]:
        tabs = [ProtocolClient(p.url + "cached?key=answer") for p in procs]
        await asyncio.gather(*(tab.open() for tab in tabs))
        texts = [tab.text() for tab in tabs]
        await asyncio.gather(*(tab.close() for tab in tabs))
        return texts

    texts = asyncio.run(main())
    assert len({t for t in texts}) == 1 and "value answer from" in texts[0], texts
    computed = [line for p in procs for line in log_lines(p, "computing answer")]
    assert len(computed) == 1, computed


def test_tampered_shared_value_is_refused(procs: list[ServeProcess], store: RedisServer) -> None:
    name = cache_name("forged")
    forged = Codec(b"not the cluster's key").dumps(f"cache:{name}", {"key": "forged", "pid": -1}, 1 << 20)
    client = redis.Redis(host="127.0.0.1", port=store.port)
    client.set(name, forged)

    async def main() -> str:
        async with ProtocolClient(procs[1].url + "cached?key=forged") as tab:
            return tab.text()

    text = asyncio.run(main())
    assert "from -1" not in text and f"value forged from {procs[1].proc.pid}" in text, text
    assert log_lines(procs[1], "was refused and is computed again"), procs[1].log_text()[-2000:]
    stored = client.get(name)
    assert isinstance(stored, bytes)
    assert Codec(SECRET.encode()).loads(f"cache:{name}", stored) == {"key": "forged", "pid": procs[1].proc.pid}
    client.close()


def test_publish_reaches_every_process_and_a_destroyed_session_unsubscribes(procs: list[ServeProcess]) -> None:
    async def main() -> tuple[list[str], str, str]:
        tabs = [ProtocolClient(p.url + "pubsub") for p in procs]
        gone = ProtocolClient(procs[1].url + "pubsub")
        await asyncio.gather(*(tab.open() for tab in [*tabs, gone]))
        await gone.close()
        await asyncio.to_thread(wait_until, lambda: bool(log_lines(procs[1], f"session {gone.session_id}: destroyed")),
                                10, "the closed tab's session is destroyed")
        await tabs[0].click(tabs[0].find(Button)[0])
        expected = f"got hello from {procs[0].proc.pid}"
        await asyncio.gather(*(tab.wait_for(lambda tab=tab: expected in tab.text()) for tab in tabs))
        ids = [tab.session_id for tab in tabs]
        await asyncio.gather(*(tab.close() for tab in tabs))
        return ids, gone.session_id, expected

    ids, gone_id, expected = asyncio.run(main())
    for proc, sid in zip(procs, ids, strict=True):
        assert len(log_lines(proc, f"session {sid}: received {expected[4:]}")) == 1, proc.log_text()[-2000:]
    assert not log_lines(procs[1], f"session {gone_id}: received"), "a destroyed session still received a message"


def _ticks(path: Path) -> list[tuple[int, float, float]]:
    rows = []
    for line in path.read_text().splitlines():
        pid, due, ran = line.split()
        rows.append((int(pid), float(due), float(ran)))
    return rows


def test_named_task_runs_once_per_period_across_processes_and_survives_a_kill(procs: list[ServeProcess],
                                                                              ticks_file: Path) -> None:
    wait_until(lambda: ticks_file.exists() and len(_ticks(ticks_file)) >= 4, 15, "4 occurrences of the task")
    rows = _ticks(ticks_file)
    dues = [due for _, due, _ in rows]
    assert len(dues) == len(set(dues)), f"an occurrence ran twice: {rows}"
    assert all(abs(due - round(due)) < 0.01 for due in dues), f"fire times are not on the 1 s grid: {dues}"

    victim = next(p for p in procs if p.proc.pid == rows[-1][0])   # the process that ran the latest occurrence
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    killed_at = time.time()
    wait_until(lambda: sum(1 for _, due, _ in _ticks(ticks_file) if due > killed_at) >= 3, 15,
               "3 more occurrences after a process was killed")
    rows = _ticks(ticks_file)
    dues = [due for _, due, _ in rows]
    assert len(dues) == len(set(dues)), f"an occurrence ran twice: {rows}"
    after = [row for row in rows if row[1] > killed_at]
    assert victim.proc.pid not in {pid for pid, _, _ in after}
    gaps = [b - a for a, b in zip(sorted(dues), sorted(dues)[1:], strict=False)]
    assert max(gaps) <= 2.0 + 1e-6, f"occurrences were missed: gaps {gaps}"   # at most one lost while dying


def test_redis_outage_is_one_clear_log_line_and_no_crash(procs: list[ServeProcess], store: RedisServer) -> None:
    alive = [p for p in procs if p.proc.poll() is None]
    first = alive[0]
    store.stop()

    async def publish_locally() -> str:
        async with ProtocolClient(first.url + "pubsub") as tab:
            await tab.click(tab.find(Button)[0])
            await tab.wait_for(lambda: "got hello" in tab.text())
            return tab.text()

    assert f"got hello from {first.proc.pid}" in asyncio.run(publish_locally())
    time.sleep(2.5)   # several task occurrences, each claim failing
    for proc in alive:
        assert proc.proc.poll() is None, proc.log_text()[-2000:]
        lines = log_lines(proc, "is unreachable")
        assert len(lines) == 1, lines
        assert "named tasks run in every process" in lines[0]
    restarted = start_redis(store.workdir, store.port)
    try:
        wait_until(lambda: all(log_lines(p, "is reachable again") for p in alive), 15, "coordination resumes")
    finally:
        restarted.stop()
