"""Logins shared by the processes of a deployment through ``--session-store`` (SQLite, then Redis).

Two real ``kernelstate serve --basic-auth`` processes share
``KERNELSTATE_SECRET_KEY`` and a store: a login made on A works on B (page
and WebSocket); logout on B ends the copied cookie on A within the login
cache's bound, and closes A's open WebSocket of that login (4411); a login
record changed in the store is refused; with Redis, an outage answers 503
(one log line) and sign-in works again when Redis is back.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import PASSWORDS, SECRET_KEY, login, login_cookie, login_id_of, password_file, try_login, xsrf_of

from kernelstate.auth.identity import User
from kernelstate.auth.logins import COOKIE_NAME
from kernelstate.auth.shared_logins import LOGIN_CACHE_TTL_S, RECHECK_EVERY_S, RETRY_S, SharedLogins, login_key
from kernelstate.endpoint import CloseCode
from kernelstate.store.base import StoreUnavailableError
from kernelstate.store.redis_store import RedisStore
from kernelstate.store.sqlite import SQLiteStore
from kernelstate.testing import ProtocolClient
from kernelstate.testing.plugin import ServeProcess, start_serve_process

WHO_APP = 'import kernelstate as ks\nks.pane.Markdown(f"# Hello {ks.state.user}").servable(title="Who")\n'
WS_CLOSE_BOUND_S = LOGIN_CACHE_TTL_S + RECHECK_EVERY_S   # the bound kernelstate.auth.shared_logins documents


def base(server: ServeProcess) -> str:
    return f"http://127.0.0.1:{server.port}"


def get(server: ServeProcess, path: str, cookie: str) -> httpx.Response:
    return httpx.get(base(server) + path, headers={"Cookie": f"{COOKIE_NAME}={cookie}"}, follow_redirects=False,
                     timeout=30)


def let_in(response: httpx.Response) -> bool:
    return response.status_code == 200 and "<html" in response.text.lower()


def refused(response: httpx.Response) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/login")


def start_pair(root: Path, store_url: str, env: dict[str, str] | None = None) -> list[ServeProcess]:
    (root / "who.py").write_text(WHO_APP)
    passwords = password_file(root)
    procs: list[ServeProcess] = []
    try:
        for _ in range(2):
            procs.append(start_serve_process(
                str(root / "who.py"), "--basic-auth", str(passwords), "--auth-cookie-expiry", "3600",
                *(["--session-store", store_url] if store_url else []),
                env={"KERNELSTATE_SECRET_KEY": SECRET_KEY, **(env or {})}))
    except BaseException:
        for proc in procs:
            proc.stop()
        raise
    return procs


async def _tab(server: ServeProcess, cookie: str) -> ProtocolClient:
    tab = ProtocolClient(base(server) + "/who", headers={"Cookie": f"{COOKIE_NAME}={cookie}"})
    await tab.fetch_page()
    await tab.connect()
    return tab


def check_logout_elsewhere(a: ServeProcess, b: ServeProcess, user: str) -> float:
    """Log in on A, open a tab there, sign out on B; returns how long A's WebSocket took to close."""
    on_a = login(base(a), user, PASSWORDS[user])
    cookie = login_cookie(on_a)
    on_b = httpx.Client(base_url=base(b), follow_redirects=False, timeout=30)
    on_b.cookies.set(COOKIE_NAME, cookie)
    form = on_b.get("/logout")
    assert form.status_code == 200 and f"signed in as {user}" in form.text

    async def main() -> tuple[int | None, str | None, float]:
        tab = await _tab(a, cookie)
        await tab.wait_for(lambda: f"Hello {user}" in tab.text())
        out = await asyncio.get_running_loop().run_in_executor(
            None, lambda: on_b.post("/logout", data={"_xsrf": xsrf_of(form.text)}))
        assert out.status_code == 302, (out.status_code, out.text[:300])
        signed_out = time.monotonic()
        code, reason = await tab.wait_closed(timeout=WS_CLOSE_BOUND_S + 15)   # generous: 2 busy cores
        return code, reason, time.monotonic() - signed_out

    code, reason, closed_after_s = asyncio.run(main())
    assert code == CloseCode.SIGNED_OUT and "signed out" in (reason or ""), (code, reason)
    time.sleep(LOGIN_CACHE_TTL_S + 0.5)   # past the documented bound, A must have forgotten the login
    assert refused(get(a, "/who", cookie))
    assert refused(get(b, "/who", cookie))
    on_a.close()
    on_b.close()
    return closed_after_s


# -- SQLite ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sqlite_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, ServeProcess, Path]]:
    root = tmp_path_factory.mktemp("shared-logins")
    store = root / "x.sqlite"
    a, b = start_pair(root, f"sqlite:///{store}")
    yield a, b, store
    a.stop()
    b.stop()


def test_a_login_made_on_one_process_works_on_another(sqlite_pair: tuple[ServeProcess, ServeProcess, Path]) -> None:
    """The cookie of a login on A opens B's page and B's WebSocket."""
    a, b, _ = sqlite_pair
    client = login(base(a), "alice", PASSWORDS["alice"])
    cookie = login_cookie(client)
    assert let_in(get(b, "/who", cookie))

    async def main() -> str:
        tab = await _tab(b, cookie)
        try:
            await tab.wait_for(lambda: "Hello alice" in tab.text())
            return tab.text()
        finally:
            await tab.close()

    assert "Hello alice" in asyncio.run(main())
    client.close()


def test_logout_on_one_process_ends_the_login_on_every_process(
        sqlite_pair: tuple[ServeProcess, ServeProcess, Path]) -> None:
    """Logout on B refuses the copied cookie on A within the cache bound and closes A's WebSocket (4411)."""
    a, b, _ = sqlite_pair
    closed_after_s = check_logout_elsewhere(a, b, "bob")
    print(f"sqlite: A's WebSocket closed {closed_after_s:.2f} s after logout on B (bound {WS_CLOSE_BOUND_S:g} s)")


def test_a_tampered_login_record_is_refused(sqlite_pair: tuple[ServeProcess, ServeProcess, Path]) -> None:
    """A login record changed in the store (alice made bob) fails its signature and is refused, and logged."""
    a, b, store = sqlite_pair
    client = login(base(a), "alice", PASSWORDS["alice"])
    cookie = login_cookie(client)
    key = login_key(login_id_of(cookie))
    with sqlite3.connect(store) as db:
        (blob,) = db.execute("SELECT value FROM records WHERE key = ?", (key,)).fetchone()
        assert b'"name":"alice"' in blob and b"alice-pw" not in blob
        db.execute("UPDATE records SET value = ? WHERE key = ?", (blob.replace(b'"alice"', b'"bobby"'), key))
    time.sleep(LOGIN_CACHE_TTL_S + 0.5)
    for proc in (b, a):
        response = get(proc, "/who", cookie)
        assert refused(response), (response.status_code, response.text[:200])
    assert any("refused the login record" in line and "signature" in line for line in b.output)
    client.close()


# -- Redis -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not listen on 127.0.0.1:{port} within 10 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed (apt install redis-server)")
def test_logins_shared_through_redis_and_an_outage_answers_503(tmp_path: Path) -> None:
    """Through Redis: shared login and logout; Redis stopped: 503 page and one log line; back: sign-in works."""
    port = _free_port()
    redis = _start_redis(port)
    a, b = start_pair(tmp_path, f"redis://127.0.0.1:{port}/0", env={"KERNELSTATE_RUNTIME_DIR": str(tmp_path)})
    try:
        client = login(base(a), "alice", PASSWORDS["alice"])
        cookie = login_cookie(client)
        assert let_in(get(b, "/who", cookie))
        closed_after_s = check_logout_elsewhere(b, a, "bob")
        print(f"redis: B's WebSocket closed {closed_after_s:.2f} s after logout on A (bound {WS_CLOSE_BOUND_S:g} s)")

        _stop(redis)
        time.sleep(LOGIN_CACHE_TTL_S + 0.5)
        for _ in range(3):
            down = get(a, "/who", cookie)
            assert down.status_code == 503 and "Sign-in is unavailable" in down.text, (down.status_code, down.text[:200])
        with httpx.Client(base_url=base(a), follow_redirects=False, timeout=30) as fresh:
            assert try_login(fresh, "alice", PASSWORDS["alice"]).status_code == 503   # no login it cannot keep
        assert sum("while reading a login record" in line for line in a.output) == 1, a.output[-10:]
        assert a.proc.poll() is None and b.proc.poll() is None

        redis = _start_redis(port)   # empty: the logins kept in it are gone
        deadline = time.monotonic() + 15
        while refused(get(a, "/who", cookie)) is False and time.monotonic() < deadline:
            time.sleep(0.3)
        assert refused(get(a, "/who", cookie))
        assert any("reachable again" in line for line in a.output)
        again = login(base(a), "alice", PASSWORDS["alice"])
        assert let_in(get(b, "/who", login_cookie(again)))
        again.close()
        client.close()
    finally:
        a.stop()
        b.stop()
        _stop(redis)


# -- the records in-process (a real SQLite store; a real Redis client facing a closed port) --------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _records(path: Path, clock: Clock) -> SharedLogins:
    return SharedLogins(lambda: SQLiteStore(path), SECRET_KEY.encode(), 3600, clock=clock)


def test_a_revoked_login_stays_revoked_when_another_process_writes_it_back(tmp_path: Path) -> None:
    """A refresh after a logout elsewhere finds no record and does not bring the login back."""
    clock = Clock()
    on_a, on_b = _records(tmp_path / "s.sqlite", clock), _records(tmp_path / "s.sqlite", clock)
    login = on_a.issue(User("carol", {"name": "carol"}), refresh_token="refresh-secret-1", access_expires_at=1.0)
    assert on_b.get(login.id) == login
    on_b.revoke(login.id)
    assert on_b.get(login.id) is None
    assert on_a.get(login.id) == login            # within the cache bound, A still trusts what it read
    on_a.replace(login.with_user(User("carol", {"name": "carol"}, "new-access")))
    clock.now += LOGIN_CACHE_TTL_S
    assert on_a.get(login.id) is None and _records(tmp_path / "s.sqlite", clock).get(login.id) is None
    assert "refresh-secret-1" not in repr(login)   # a secret: never in a log line


def test_an_unreachable_store_refuses_fast_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    """With the store down, an unverifiable login is refused (StoreUnavailableError), one ERROR line per outage."""
    clock = Clock()
    records = SharedLogins(lambda: RedisStore(f"redis://127.0.0.1:{_free_port()}/0"), SECRET_KEY.encode(), 3600,
                           clock=clock)
    with caplog.at_level(logging.INFO, logger="kernelstate.auth.shared_logins"):
        for _ in range(3):
            with pytest.raises(StoreUnavailableError):
                records.get("some-login-id")
            clock.now += RETRY_S / 2
        with pytest.raises(StoreUnavailableError):
            records.issue(User("dave"))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "503" in errors[0].getMessage() and "redis://127.0.0.1" in errors[0].getMessage()
