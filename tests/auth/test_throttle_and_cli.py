"""Failure throttling on a real server (one shared password from the environment) and the CLI's secret rules.

Repeated failures are slowed per client address and per user name, without
blocking other requests; flags that would carry a secret are refused with a
pointer to the environment; ``kernelstate hash-password`` reads stdin.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from argon2 import PasswordHasher
from auth_helpers import login, try_login

from kernelstate.testing.plugin import ServeProcess, start_serve_process

SHARED = "one shared password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("throttle")
    (root / "app.py").write_text('import kernelstate as ks\nks.pane.Str(f"hi {ks.state.user}").servable()\n')
    proc = start_serve_process(str(root / "app.py"), env={"KERNELSTATE_BASIC_AUTH_PASSWORD": SHARED})
    yield proc
    proc.stop()


def client_from(server: ServeProcess, address: str) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60,
                        transport=httpx.HTTPTransport(local_address=address))


def timed_failure(client: httpx.Client, user: str) -> float:
    start = time.monotonic()
    assert try_login(client, user, "wrong").status_code == 401
    return time.monotonic() - start


def test_shared_password_admits_any_user_name(server: ServeProcess) -> None:
    client = login(f"http://127.0.0.1:{server.port}", "carol", SHARED)
    assert client.get("/app").status_code == 200
    client.close()


def test_repeated_failures_are_slowed_per_client_and_per_user(server: ServeProcess) -> None:
    with client_from(server, "127.0.0.2") as attacker:
        first = [timed_failure(attacker, "eve") for _ in range(3)]
        slowed = [timed_failure(attacker, "eve") for _ in range(3)]   # waits 0.5, 1 and 2 s
        assert slowed[-1] >= 1.5 and slowed[-1] > min(first), (first, slowed)
        # The same client guessing another name is slowed too (per client) ...
        assert timed_failure(attacker, "frank") >= 2.0
    # ... and so is another client guessing the same name (per user name).
    with client_from(server, "127.0.0.3") as elsewhere:
        assert timed_failure(elsewhere, "eve") >= 2.0


def test_a_delayed_login_does_not_block_other_requests(server: ServeProcess) -> None:
    with client_from(server, "127.0.0.4") as attacker:
        for _ in range(6):
            try_login(attacker, "grace", "wrong")
        done: list[float] = []
        worker = threading.Thread(target=lambda: done.append(timed_failure(attacker, "grace")))
        worker.start()
        time.sleep(0.3)
        liveness = httpx.get(f"http://127.0.0.1:{server.port}/liveness", timeout=30)
        answered_while_waiting = not done
        worker.join()
    assert liveness.status_code == 200 and answered_while_waiting and done[0] >= 4.0
    assert "delayed" in server.log_text()


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kernelstate.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("flag", "env"), [("--basic-auth-password", "KERNELSTATE_BASIC_AUTH_PASSWORD"),
                                           ("--password", "KERNELSTATE_BASIC_AUTH_PASSWORD"),
                                           ("--cookie-secret", "KERNELSTATE_SECRET_KEY")])
def test_secrets_as_flag_values_are_refused(flag: str, env: str) -> None:
    done = cli("serve", "app.py", f"{flag}=hunter2")
    assert done.returncode == 2 and f"{flag} is refused" in done.stderr and env in done.stderr


def test_basic_auth_given_a_password_says_to_use_the_environment(tmp_path: pytest.TempPathFactory) -> None:
    app = tmp_path / "app.py"  # type: ignore[operator]
    app.write_text("import kernelstate as ks\nks.pane.Str('x').servable()\n")
    done = cli("serve", str(app), "--basic-auth", "hunter2-not-a-file")
    assert done.returncode == 2 and "KERNELSTATE_BASIC_AUTH_PASSWORD" in done.stderr
    assert "hunter2" not in done.stderr


def test_hash_password_reads_stdin_and_serve_help_documents_the_flags() -> None:
    done = cli("hash-password", stdin="s3cret\n")
    assert done.returncode == 0 and PasswordHasher().verify(done.stdout.strip(), "s3cret")
    assert "s3cret" not in done.stdout
    text = cli("serve", "--help").stdout
    for flag in ("--basic-auth", "--auth-cookie-expiry", "--authorize", "--ssl-certfile", "--ssl-keyfile",
                 "KERNELSTATE_BASIC_AUTH_PASSWORD", "KERNELSTATE_SECRET_KEY"):
        assert flag in text, flag
    assert "--basic-auth-password" not in text
