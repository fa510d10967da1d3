"""The auth package's parts on their own: redirects, user-bound tokens, login records, passwords, throttle."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from kernelstate.auth.access import authorize_allows, safe_next
from kernelstate.auth.identity import User
from kernelstate.auth.logins import LoginStore
from kernelstate.auth.passwords import PasswordFileError, Passwords, hash_password
from kernelstate.auth.throttle import FailureThrottle
from kernelstate.web.tokens import Signer, TokenError


@pytest.mark.parametrize(("given", "expected"), [
    ("/app?x=1", "/app?x=1"), ("", "/"), (None, "/"), ("//evil.example", "/"), ("/\\evil.example", "/"),
    ("https://evil.example/", "/"), ("app", "/"), ("javascript:alert(1)", "/"), ("/a\r\nSet-Cookie: x", "/"),
])
def test_next_is_a_path_on_this_site(given: str | None, expected: str) -> None:
    assert safe_next(given, "") == expected
    assert safe_next(given, "/dash") == (expected if expected != "/" else "/dash/")


def test_the_authorize_callback_gets_the_page_path_for_a_websocket() -> None:
    from kernelstate.auth.access import page_path

    assert [page_path(p) for p in ("/app", "/app/ws", "/ws", "/a/ws/b")] == ["/app", "/app", "/", "/a/ws/b"]
    assert page_path("/dash/ws", "/dash") == "/dash/" and page_path("/dash/app/ws", "/dash") == "/dash/app"


def test_tokens_bound_to_a_user_verify_only_for_that_user() -> None:
    signer = Signer.create("k")
    sid = signer.new_session_id()
    token = signer.token(sid, 60, "alice")
    assert signer.verify(token, user="alice") == (sid, False)
    for other in ("bob", None, "alice "):
        with pytest.raises(TokenError, match="another user"):
            signer.verify(token, user=other)
    with pytest.raises(TokenError, match="another user"):   # a token issued to nobody is not anyone's
        signer.verify(signer.token(sid, 60), user="alice")
    assert "alice" not in token and signer.session_id_of(token) == sid
    assert Signer.create("other").session_id_of(token) is None


def test_login_records_expire_and_revoked_logins_stay_revoked() -> None:
    store = LoginStore(expiry_s=0.2)
    login = store.issue(User("alice"))
    assert store.get(login.id) == login and login.user.claims() == {"name": "alice"}
    store.revoke(login.id)
    store.replace(login.with_user(User("alice", access_token="new")))   # a refresh after logout
    assert store.get(login.id) is None
    short = store.issue(User("bob"))
    time.sleep(0.3)
    assert store.get(short.id) is None and len(store) == 0


def test_password_file_checks(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text(f"# users\nalice:{hash_password('right')}\n")
    path.chmod(0o600)
    book = Passwords.from_file(path)
    assert book.check("alice", "right") and not book.check("alice", "wrong") and not book.check("carol", "right")
    assert not book.check("", "right") and not book.check("alice", "")
    path.chmod(0o604)
    with pytest.raises(PasswordFileError, match="chmod 600"):
        Passwords.from_file(path)
    path.chmod(0o600)
    path.write_text("alice:plaintext\n")
    with pytest.raises(PasswordFileError, match="line 1"):
        Passwords.from_file(path)


def test_throttle_grows_per_key_and_a_success_clears_it() -> None:
    throttle = FailureThrottle(free=2, base_s=0.5, max_s=3.0)
    for _ in range(2):
        throttle.failed("client:a", "user:x")
    assert throttle.delay_for("client:a") == 0.5 and throttle.delay_for("client:b", "user:x") == 0.5
    for _ in range(5):
        throttle.failed("client:a")
    assert throttle.delay_for("client:a") == 3.0 and throttle.delay_for("client:b") == 0.0
    throttle.succeeded("client:a")
    assert throttle.delay_for("client:a") == 0.0


def test_authorize_callback_only_true_allows_and_errors_refuse() -> None:
    def run(callback: object) -> bool:
        return asyncio.run(authorize_allows(callback, {"name": "alice"}, "/app"))  # type: ignore[arg-type]

    async def allow_async(info: object, path: str) -> bool:
        return True

    def broken(info: object, path: str) -> bool:
        raise KeyError("groups")

    assert run(lambda info, path: True) and run(allow_async)
    assert not run(lambda info, path: 1) and not run(lambda info, path: None) and not run(broken)
