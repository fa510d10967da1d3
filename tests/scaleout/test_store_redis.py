"""Sessions recovered across processes through a shared Redis store (a real ``redis-server``).

Processes share ``KERNELSTATE_SECRET_KEY`` and take the store's URL, with its
password, from ``KERNELSTATE_SESSION_STORE`` (never argv). A tab whose process
is SIGKILLed reconnects to another process, which rebuilds its session from
the record: values, ``ks.state.saved`` and ``on_session_restored`` survive; a
tampered record is refused; a record from an older app version restores what
still matches; a Redis outage costs recovery only, with one log line.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bokeh.models import Slider, TextInput

from kernelstate.store import record_key
from kernelstate.testing import ClosedError, ProtocolClient

from .store_support import SECRET, Processes, RedisServer, percentile, reconnect, redis_server, run, wait_for_log

__all__ = ["redis_server"]  # the module's Redis fixture

APP = '''"""Failover"""
import kernelstate as ks

n = ks.widgets.IntSlider(name="n", start=0, end=1000, value=0)
shown = ks.pane.Str("fresh")


def changed(event):
    ks.state.saved["changes"] = ks.state.saved.get("changes", 0) + 1
    shown.object = f"n is {event.new}"


def restored():
    shown.object = f"restored n={n.value} changes={ks.state.saved.get('changes')}"


n.param.watch(changed, "value")
ks.state.on_session_restored(restored)
ks.Column(n, shown).servable()
'''
V1 = '''"""Versioned"""
import kernelstate as ks

ks.Column(ks.widgets.IntSlider(name="n", end=20), ks.widgets.IntSlider(name="m", end=20),
          ks.widgets.TextInput(name="text")).servable()
'''
V2 = V1.replace('ks.widgets.IntSlider(name="m", end=20)', 'ks.widgets.TextInput(name="m")')


@pytest.fixture
def procs(redis_server: RedisServer, tmp_path: Path) -> Iterator[Processes]:
    processes = Processes({"KERNELSTATE_SECRET_KEY": SECRET, "KERNELSTATE_SESSION_STORE": redis_server.url,
                           "KERNELSTATE_RUNTIME_DIR": str(tmp_path / "runtime")})
    yield processes
    processes.stop_all()


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


def test_sigkill_one_of_two_processes_loses_no_values(procs: Processes, tmp_path: Path, redis_server: RedisServer,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """30 tabs on a SIGKILLed process reconnect to another: every value, saved dict and restore callback is there."""
    app = write(tmp_path, "failover.py", APP)
    a, b = procs.serve_many((app, ()), (app, ()))
    assert redis_server.password not in " ".join(a.proc.args)  # type: ignore[arg-type]

    async def main() -> list[float]:
        tabs = []
        for i in range(30):
            tab = ProtocolClient(a.url.rstrip("/") + "/failover", timeout=10)
            await tab.open()
            await tab.set(tab.find(Slider)[0], "value", i + 1)
            tabs.append(tab)
        await tabs[-1].wait_for(lambda: "n is 30" in tabs[-1].text())
        await asyncio.sleep(0.6)  # debounced writes
        a.proc.kill()
        await asyncio.gather(*[tab.wait_closed(5) for tab in tabs])
        url_b = b.url.rstrip("/") + "/failover"

        async def recover(i: int, token: str) -> float:
            t0 = time.monotonic()
            back = await reconnect(url_b, token, timeout=30)
            took = time.monotonic() - t0
            assert back.find(Slider)[0].value == i + 1, "lost value"
            await back.wait_for(lambda: f"restored n={i + 1} changes=1" in back.text())
            await back.set(back.find(Slider)[0], "value", 500 + i)
            await back.wait_for(lambda: f"n is {500 + i}" in back.text())
            await back.close()
            return took

        one_by_one = [await recover(i, tab.token) for i, tab in enumerate(tabs[:10])]
        at_once = await asyncio.gather(*[recover(i, tab.token) for i, tab in enumerate(tabs) if i >= 10])
        return one_by_one, list(at_once)

    one_by_one, at_once = run(main)
    assert len(one_by_one) == 10 and len(at_once) == 20
    with capsys.disabled():
        for what, times in (("10 tabs one at a time", one_by_one), ("20 tabs at once", at_once)):
            print(f"\nrecovery after SIGKILL (reconnect to values shown), {what}: "
                  f"p50 {percentile(times, 50) * 1000:.0f} ms, p95 {percentile(times, 95) * 1000:.0f} ms")
    assert b.log_text().count("restored session /failover") == 30
    assert redis_server.password not in a.log_text() + b.log_text()


def test_tampered_record_is_refused(procs: Processes, tmp_path: Path, redis_server: RedisServer) -> None:
    """A record changed in the store is refused: the reconnecting tab is told to reload, and the log says why."""
    app = write(tmp_path, "failover.py", APP)
    a, b = procs.serve_many((app, ()), (app, ()))

    async def main() -> None:
        tab = ProtocolClient(a.url.rstrip("/") + "/failover", timeout=10)
        await tab.open()
        await tab.set(tab.find(Slider)[0], "value", 5)
        await asyncio.sleep(0.6)
        a.proc.kill()
        await tab.wait_closed(5)
        redis = redis_server.client()
        key = record_key(tab.session_id)
        data = redis.get(key)
        assert data is not None and b'"value",5]' in data
        redis.set(key, data.replace(b'"value",5]', b'"value",999]'), px=60000)
        with pytest.raises(ClosedError) as err:
            await reconnect(b.url.rstrip("/") + "/failover", tab.token)
        assert err.value.code == 4404 and "reload" in (err.value.reason or "")

    run(main)
    wait_for_log(b, "refused to restore a session")
    assert "bad signature" in b.log_text()


def test_older_app_version_restores_what_matches(procs: Processes, tmp_path: Path) -> None:
    """A record from the app's previous version: matching values come back, the rest is logged as dropped."""
    old, new = procs.serve_many((write(tmp_path, "v1/versioned.py", V1), ()), (write(tmp_path, "v2/versioned.py", V2), ()))

    async def main() -> None:
        tab = ProtocolClient(old.url.rstrip("/") + "/versioned", timeout=10)
        await tab.open()
        n, m = tab.find(Slider)
        await tab.set(n, "value", 7)
        await tab.set(m, "value", 8)
        await tab.set(tab.find(TextInput)[0], "value", "kept")
        await asyncio.sleep(0.6)
        old.proc.kill()
        await tab.wait_closed(5)
        back = await reconnect(new.url.rstrip("/") + "/versioned", tab.token)
        assert [s.value for s in back.find(Slider)] == [7]
        assert [t.value for t in back.find(TextInput)] == ["", "kept"]

    run(main)
    wait_for_log(new, "restored from app version")
    assert "0/children.1:Slider.value" in new.log_text()


def test_redis_outage_degrades_then_recovers(procs: Processes, tmp_path: Path, redis_server: RedisServer) -> None:
    """Redis stopped: sessions work on, one log line, unknown sessions reload; Redis back: recovery works again."""
    app = write(tmp_path, "failover.py", APP)
    a, b = procs.serve_many((app, ("--check-unused-sessions", "300")), (app, ()))
    url_a, url_b = a.url.rstrip("/") + "/failover", b.url.rstrip("/") + "/failover"

    async def main() -> None:
        tab = await ProtocolClient(url_a, timeout=10).open()
        other = await ProtocolClient(url_a, timeout=10).open()
        await tab.set(tab.find(Slider)[0], "value", 11)
        await asyncio.sleep(0.6)
        redis_server.stop()
        for value in (12, 13, 14):
            await tab.set(tab.find(Slider)[0], "value", value)
            await tab.wait_for(lambda v=value: f"n is {v}" in tab.text())
            await asyncio.sleep(0.4)
        wait_for_log(a, "Sessions keep working in this process")
        # A reconnect the store cannot serve degrades to today's behaviour: reload.
        with pytest.raises(ClosedError) as err:
            await reconnect(url_b, other.token)
        assert err.value.code == 4404
        redis_server.start()
        wait_for_log(a, "is reachable again", timeout=15)
        client = redis_server.client()
        deadline = time.monotonic() + 10
        while client.get(record_key(tab.session_id)) is None:
            assert time.monotonic() < deadline, "the record was not rewritten after Redis came back"
            await asyncio.sleep(0.1)
        a.proc.kill()
        await tab.wait_closed(5)
        back = await reconnect(url_b, tab.token)
        assert back.find(Slider)[0].value == 14

    run(main)
    assert a.log_text().count("Sessions keep working in this process") == 1
    assert "Traceback" not in a.log_text()
