"""Issue 18 item 1 (--num-procs without Redis): cluster-wide work through one SQLite file on this machine.

Three real `kernelstate serve` processes on different ports share one `sqlite:///` URL and
KERNELSTATE_SECRET_KEY, and no Redis. The tests run in file order: the task test kills a process,
the lock test holds the file's write lock, so they come last; the damaged-file test starts its own process.
"""
from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from bokeh.models import Button

from kernelstate.cluster.shared_cache import cache_name
from kernelstate.cluster.signing import Codec
from kernelstate.testing import ProtocolClient
from kernelstate.testing.plugin import ServeProcess, start_serve_process

from .cluster_support import wait_until

SECRET = "machine-test-secret-0123456789abcdef"

SETUP = '''
import os, time
import kernelstate as ks
from kernelstate.tasks import tasks

def tick():
    due = tasks.get("machine-tick").occurrence   # the due time of this run
    with open(os.environ["KS_TEST_TICKS"], "a") as f:
        f.write(f"{os.getpid()} {due.timestamp():.3f} {time.time():.3f}\\n")

ks.state.schedule_task("machine-tick", tick, period=1)
'''

PUBSUB_APP = '''
import logging, os, time
import kernelstate as ks

log = logging.getLogger("kernelstate.state")
out = ks.pane.Str("nothing yet")
count = [0]

def got(value):
    out.object = f"got {value['n']} from {value['pid']}"
    log.info("session %s: received %s from %s after %.1f ms", ks.state.session_id, value["n"], value["pid"],
             (time.time() - value["at"]) * 1000)

def send(event):
    count[0] += 1
    ks.state.publish("news", {"n": count[0], "pid": os.getpid(), "at": time.time()})

ks.state.subscribe("news", got)
button = ks.widgets.Button(name="publish")
button.on_click(send)
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
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("machine")
    (root / "apps").mkdir()
    (root / "apps" / "pubsub.py").write_text(PUBSUB_APP)
    (root / "apps" / "cached.py").write_text(CACHED_APP)
    (root / "setup.py").write_text(SETUP)
    return root


@pytest.fixture(scope="module")
def database(root: Path) -> Path:
    return root / "run" / "cluster.sqlite"


def serve_args(root: Path, database: Path) -> tuple[str, ...]:
    return (str(root / "apps"), "--setup", str(root / "setup.py"), "--session-store", f"sqlite://{database}",
            "--unused-session-lifetime", "300", "--check-unused-sessions", "200")


@pytest.fixture(scope="module")
def procs(root: Path, database: Path) -> Iterator[list[ServeProcess]]:
    env = {"KERNELSTATE_SECRET_KEY": SECRET, "KS_TEST_TICKS": str(root / "ticks.txt")}
    with ThreadPoolExecutor(3) as pool:
        started = list(pool.map(lambda _: start_serve_process(*serve_args(root, database), env=env), range(3)))
    yield started
    for proc in started:
        proc.stop()


def log_lines(proc: ServeProcess, text: str) -> list[str]:
    return [line for line in list(proc.output) if text in line]


def test_shared_cache_computes_once_across_three_processes(procs: list[ServeProcess], database: Path) -> None:
    """as_cached(shared=True) runs its function in one process; the others read its value from the file."""
    async def main() -> list[str]:
        tabs = [ProtocolClient(p.url + "cached?key=answer") for p in procs]
        await asyncio.gather(*(tab.open() for tab in tabs))
        texts = [tab.text() for tab in tabs]
        await asyncio.gather(*(tab.close() for tab in tabs))
        return texts

    texts = asyncio.run(main())
    assert len(set(texts)) == 1 and "value answer from" in texts[0], texts
    computed = [line for p in procs for line in log_lines(p, "computing answer")]
    assert len(computed) == 1, computed
    assert oct(database.stat().st_mode & 0o777) == oct(0o600) and oct(database.parent.stat().st_mode & 0o777) == oct(0o700)


def test_tampered_shared_value_is_refused(procs: list[ServeProcess], database: Path) -> None:
    """A cache row signed with another key is refused, logged, computed again and replaced."""
    name = cache_name("forged")
    forged = Codec(b"not the cluster's key").dumps(f"cache:{name}", {"key": "forged", "pid": -1}, 1 << 20)
    with sqlite3.connect(database, isolation_level=None) as db:
        db.execute("INSERT OR REPLACE INTO ks_cache (key, value, expires) VALUES (?, ?, ?)",
                   (name, forged, time.time() + 600))

    async def main() -> str:
        async with ProtocolClient(procs[1].url + "cached?key=forged") as tab:
            return tab.text()

    text = asyncio.run(main())
    assert "from -1" not in text and f"value forged from {procs[1].proc.pid}" in text, text
    assert log_lines(procs[1], "was refused and is computed again"), procs[1].log_text()[-2000:]
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT value FROM ks_cache WHERE key = ?", (name,)).fetchone()[0]
    assert Codec(SECRET.encode()).loads(f"cache:{name}", stored) == {"key": "forged", "pid": procs[1].proc.pid}


def _latencies(procs: list[ServeProcess]) -> list[float]:
    found = (re.search(r"received \d+ from -?\d+ after ([\d.]+) ms", line) for p in procs for line in log_lines(p, " after "))
    return [float(m.group(1)) for m in found if m]


def test_publish_reaches_sessions_in_every_process(procs: list[ServeProcess], database: Path) -> None:
    """A message published in one process reaches a session in each of the three; a forged row is refused."""
    with sqlite3.connect(database, isolation_level=None) as db:   # signed with another key: nobody delivers it
        db.execute("INSERT INTO ks_messages (topic, value, at) VALUES ('news', ?, ?)",
                   (Codec(b"forger").dumps("topic:news", {"n": 0, "pid": -1, "at": 0}, 1 << 20), time.time()))
    rounds = 20

    async def main() -> list[str]:
        tabs = [ProtocolClient(p.url + "pubsub") for p in procs]
        await asyncio.gather(*(tab.open() for tab in tabs))
        button = tabs[0].find(Button)[0]
        for n in range(1, rounds + 1):   # the first round checks delivery; all of them give the latency figures
            await tabs[0].click(button)
            expected = f"got {n} from {procs[0].proc.pid}"
            await asyncio.gather(*(tab.wait_for(lambda tab=tab, expected=expected: expected in tab.text(), timeout=10) for tab in tabs))
        ids = [tab.session_id for tab in tabs]
        await asyncio.gather(*(tab.close() for tab in tabs))
        return ids

    ids = asyncio.run(main())
    for proc, sid in zip(procs, ids, strict=True):
        assert len(log_lines(proc, f"session {sid}: received 1 from {procs[0].proc.pid}")) == 1, proc.log_text()[-2000:]
    assert not [line for p in procs for line in log_lines(p, "from -1")], "a forged message was delivered"
    latencies = sorted(_latencies(procs[1:]))   # the other processes: publish to callback, through the file
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))]
    print(f"\npublish latency across processes over {len(latencies)} deliveries: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    assert p95 < 2000, latencies   # a generous bound: the poller looks every 50 ms


def _ticks(path: Path) -> list[tuple[int, float, float]]:
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        pid, due, ran = line.split()
        rows.append((int(pid), float(due), float(ran)))
    return rows


def test_named_task_runs_once_per_period_and_survives_a_kill(procs: list[ServeProcess], root: Path) -> None:
    """Each occurrence of a named task runs in one process; after a SIGKILL the others keep it firing."""
    ticks = root / "ticks.txt"
    wait_until(lambda: len(_ticks(ticks)) >= 4, 15, "4 occurrences of the task")
    rows = _ticks(ticks)
    dues = [due for _, due, _ in rows]
    assert len(dues) == len(set(dues)), f"an occurrence ran twice: {rows}"
    assert all(abs(due - round(due)) < 0.01 for due in dues), f"fire times are not on the 1 s grid: {dues}"

    victim = next(p for p in procs if p.proc.pid == rows[-1][0])   # the process that ran the latest occurrence
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    killed_at = time.time()
    wait_until(lambda: sum(1 for _, due, _ in _ticks(ticks) if due > killed_at) >= 3, 15,
               "3 more occurrences after a process was killed")
    rows = _ticks(ticks)
    dues = sorted(due for _, due, _ in rows)
    assert len(dues) == len(set(dues)), f"an occurrence ran twice: {rows}"
    assert victim.proc.pid not in {pid for pid, due, _ in rows if due > killed_at}
    gaps = [b - a for a, b in zip(dues, dues[1:], strict=False)]
    assert max(gaps) <= 2.0 + 1e-6, f"occurrences were missed: gaps {gaps}"   # at most one lost while dying


def test_a_locked_database_is_one_log_line_and_no_crash(procs: list[ServeProcess], database: Path) -> None:
    """Another holder of the write lock: claims time out, one error line, tasks run locally; then it resumes."""
    alive = [p for p in procs if p.proc.poll() is None]
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        wait_until(lambda: all(log_lines(p, "cannot be used") for p in alive), 15, "every process reports the lock")
        time.sleep(2.5)   # more occurrences, each claim failing again
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_until(lambda: all(log_lines(p, "can be used again") for p in alive), 15, "coordination resumes")
    for proc in alive:
        assert proc.proc.poll() is None, proc.log_text()[-2000:]
        lines = [line for line in log_lines(proc, "cannot be used") if "kernelstate.cluster" in line]
        assert len(lines) == 1 and "database is locked" in lines[0], lines
        assert "named tasks run in every process" in lines[0]


def test_a_damaged_database_file_degrades_to_one_process(root: Path) -> None:
    """A file that is not SQLite: one clear log line from the coordinator (and one from the session store, which
    then serves without recovery); the server serves, its task runs, publish stays local."""
    damaged = root / "damaged" / "cluster.sqlite"
    damaged.parent.mkdir(mode=0o700)
    damaged.write_bytes(b"this is not a database, it was overwritten " * 200)
    ticks = root / "damaged-ticks.txt"
    proc = start_serve_process(*serve_args(root, damaged), env={"KERNELSTATE_SECRET_KEY": SECRET,
                                                                "KS_TEST_TICKS": str(ticks)})
    try:
        async def main() -> str:
            async with ProtocolClient(proc.url + "pubsub") as tab:
                await tab.click(tab.find(Button)[0])
                await tab.wait_for(lambda: "got 1" in tab.text(), timeout=10)
                return tab.text()

        assert f"got 1 from {proc.proc.pid}" in asyncio.run(main())
        wait_until(lambda: len(_ticks(ticks)) >= 2, 10, "the task runs in the process alone")
        assert proc.proc.poll() is None, proc.log_text()[-2000:]
        everything = log_lines(proc, "cannot be used")
        lines = [line for line in everything if "kernelstate.cluster" in line]
        store_lines = [line for line in everything if "session store" in line and "not be recoverable" in line]
        assert len(store_lines) == 1 and len(everything) == 2, proc.log_text()   # one line each: store, coordinator
        assert len(lines) == 1 and "file is not a database" in lines[0] and str(damaged) in lines[0], proc.log_text()
        assert "delete it with its -wal and -shm files" in lines[0]
    finally:
        proc.stop()


# -- in this process: URLs, the default file, the key beside the file, locks of dead processes -----------------
def test_sqlite_urls_choose_the_machine_coordinator_and_bad_ones_say_how(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///PATH is this machine's coordinator; a URL without a path names the expected form."""
    from kernelstate.cluster import configure, coordinator
    from kernelstate.cluster.errors import StoreURLError
    from kernelstate.cluster.machine import MachineCoordinator, database_path

    with pytest.raises(StoreURLError, match="sqlite:///ABSOLUTE/PATH"):
        configure("sqlite://")
    with pytest.raises(StoreURLError, match="sqlite:///ABSOLUTE/PATH"):
        configure("sqlite://host/file.sqlite")
    assert database_path("sqlite:////abs/x.sqlite") == database_path("sqlite:///abs/x.sqlite") == Path("/abs/x.sqlite")
    monkeypatch.delenv("KERNELSTATE_SECRET_KEY", raising=False)
    url = f"sqlite://{tmp_path}/c.sqlite"
    try:
        used = configure(url)   # no secret needed: a key file beside the database
        assert isinstance(used, MachineCoordinator) and used.shared and coordinator() is used
    finally:
        configure("local")
    assert coordinator().url == "local"


def test_default_url_is_one_owner_only_file_per_listening_address(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """What --num-procs uses without a store: the runtime folder, one file per port or socket."""
    from kernelstate._paths import runtime_dir
    from kernelstate.cluster.machine import database_path, default_url
    from kernelstate.errors import ConfigError

    monkeypatch.setenv("KERNELSTATE_RUNTIME_DIR", str(tmp_path / "rt"))
    assert database_path(default_url(5006)) == (tmp_path / "rt" / "cluster-5006.sqlite").resolve()
    assert default_url(5006) != default_url(5007) != default_url("/tmp/ks.sock")
    assert default_url(5006, tmp_path / "elsewhere").startswith(f"sqlite://{(tmp_path / 'elsewhere').resolve()}/")
    assert (tmp_path / "rt").stat().st_mode & 0o777 == 0o700
    (tmp_path / "rt").chmod(0o777)
    with pytest.raises(ConfigError, match="others may write to it"):
        runtime_dir()


def test_without_a_secret_processes_share_the_key_kept_beside_the_file(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Two coordinators on one file, no KERNELSTATE_SECRET_KEY: one owner-only key file, values verify across."""
    import datetime as dt

    from kernelstate.cluster.machine import MachineCoordinator

    monkeypatch.delenv("KERNELSTATE_SECRET_KEY", raising=False)
    url = f"sqlite://{tmp_path}/c.sqlite"
    a, b = MachineCoordinator(url, None), MachineCoordinator(url, None)
    try:
        assert (tmp_path / "c.key").stat().st_mode & 0o777 == 0o600
        due = dt.datetime(2030, 1, 1)
        assert [a.claim("t", due, 60), b.claim("t", due, 60)] == [True, False]
        calls: list[str] = []

        def compute(who: str, value: int) -> list[int]:
            calls.append(who)
            return [value]

        assert a.cached("k", lambda: compute("a", 1), None) == [1]
        assert b.cached("k", lambda: compute("b", 2), None) == [1] and calls == ["a"]
    finally:
        a.close()
        b.close()


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A computation's lock left by a dead process (SIGKILL mid-compute) does not make others wait LOCK_S."""
    import subprocess
    import sys

    from kernelstate.cluster.machine import MachineCoordinator

    url = f"sqlite://{tmp_path}/c.sqlite"
    coord = MachineCoordinator(url, SECRET)
    try:
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        coord.db.run("INSERT INTO ks_locks (key, owner, expires) VALUES (?, ?, ?)",
                     (cache_name("orphan"), f"{gone.stdout.strip()}:dead", time.time() + 600))
        start = time.monotonic()
        assert coord.cached("orphan", lambda: "computed", None) == "computed"
        assert time.monotonic() - start < 10
        assert "is gone; taking over" in caplog.text
    finally:
        coord.close()


PROBE = '''
import datetime as dt, os, sys, time
from kernelstate.cluster.machine import MachineCoordinator
from kernelstate.cluster import topics

class Probe:   # stands in for a session's subscription: records what this process receives
    active = True
    def __init__(self):
        self.got = []
    def deliver(self, value):
        self.got.append(value)

def wait_for(predicate):
    deadline = time.time() + 10
    while not predicate() and time.time() < deadline:
        time.sleep(0.01)

probe = Probe()
topics._by_topic["forked"] = [probe]
'''

FORKED = PROBE + '''
coord = MachineCoordinator(sys.argv[1], "k")
coord.listen()
coord.publish("forked", "from the parent")   # the parent's sender and poller threads are running
deadline = time.time() + 10
while not probe.got and time.time() < deadline:
    time.sleep(0.01)
pid = os.fork()
if pid == 0:
    probe.got.clear()
    won = coord.claim("t", dt.datetime(2030, 1, 1), 60)
    coord.publish("forked", "from the child")
    deadline = time.time() + 10
    while "from the child" not in probe.got and time.time() < deadline:
        time.sleep(0.01)
    os._exit(0 if won and "from the child" in probe.got else 3)
_, status = os.waitpid(pid, 0)
print("parent got", probe.got, "child exit", os.waitstatus_to_exitcode(status))
'''


REPLACED = PROBE + '''
url = sys.argv[1]
a, b = MachineCoordinator(url, "k"), MachineCoordinator(url, "k")
b.listen()
a.publish("forked", "one")
wait_for(lambda: probe.got == ["one"])
b._stop.set()   # b's poller is slow to notice: a makes the new file and publishes into it first
b._poller.join()
for suffix in ("", "-wal", "-shm"):   # the file is deleted (a cleaned runtime folder) while both use it
    path = url[len("sqlite://"):] + suffix
    if os.path.exists(path):
        os.remove(path)
time.sleep(1.2)
due = dt.datetime(2030, 1, 1)
a.publish("forked", "two")
a.publish("forked", "three")
a._sender.submit(lambda: None).result()
b._stop.clear()
b._start_poller()
claims = [a.claim("t", due, 60), b.claim("t", due, 60)]
wait_for(lambda: len(probe.got) == 3)
print("claims", claims, "got", probe.got, "file", os.path.exists(url[len("sqlite://"):]))
'''


def test_a_deleted_file_is_made_again_and_every_process_moves_to_it(tmp_path: Path) -> None:
    """Both processes reopen the new file: claims stay exclusive, no message published into it is missed."""
    import subprocess
    import sys

    script = tmp_path / "replaced.py"
    script.write_text(REPLACED)
    done = subprocess.run([sys.executable, str(script), f"sqlite://{tmp_path}/c.sqlite"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "claims [True, False] got ['one', 'two', 'three'] file True" in done.stdout, done.stdout + done.stderr


def test_a_child_forked_after_the_threads_started_gets_its_own(tmp_path: Path) -> None:
    """A coordinator used before os.fork() works in the child: its own connection, sender and poller."""
    import subprocess
    import sys

    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    done = subprocess.run([sys.executable, str(script), f"sqlite://{tmp_path}/c.sqlite"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "child exit 0" in done.stdout and "'from the child'" in done.stdout, done.stdout + done.stderr


def test_subscribers_from_before_the_store_hear_through_it(tmp_path: Path) -> None:
    """A store configured after subscribe() (ks.config.session_store set in a kernel) delivers to earlier subscribers."""
    import kernelstate as ks
    from kernelstate.cluster import configure

    async def main() -> list[object]:
        got: list[object] = []
        sub = ks.state.subscribe("earlier", got.append)
        try:
            configure(f"sqlite://{tmp_path}/late.sqlite")
            ks.state.publish("earlier", {"n": 1})
            for _ in range(200):
                if got:
                    break
                await asyncio.sleep(0.02)
        finally:
            sub.cancel()
            configure("local")
        return got

    assert asyncio.run(main()) == [{"n": 1}]
