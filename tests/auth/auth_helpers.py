"""Shared helpers of the auth tests: password files, logging in over HTTP, cookies made by hand."""
from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
from tornado.web import create_signed_value

from kernelstate.auth.logins import COOKIE_NAME, cookie_secret
from kernelstate.auth.passwords import hash_password

SECRET_KEY = "auth-tests-shared-secret-key"
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}


def password_file(directory: Path, users: dict[str, str] | None = None, mode: int = 0o600) -> Path:
    path = directory / "passwords"
    path.write_text("".join(f"{name}:{hash_password(pw)}\n" for name, pw in (users or PASSWORDS).items()))
    path.chmod(mode)
    return path


def xsrf_of(html: str) -> str:
    m = re.search(r'name="_xsrf" value="([^"]+)"', html)
    assert m is not None, f"no _xsrf field in the login page: {html[:300]}"
    return m.group(1)


def login(base: str, user: str, password: str, next_url: str = "/", **client_args: object) -> httpx.Client:
    """A client signed in as ``user`` (asserts the login succeeded)."""
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=30, **client_args)  # type: ignore[arg-type]
    response = try_login(client, user, password, next_url)
    assert response.status_code == 302, (response.status_code, response.text[:300])
    assert COOKIE_NAME in client.cookies
    return client


def try_login(client: httpx.Client, user: str, password: str, next_url: str = "/") -> httpx.Response:
    page = client.get("/login", params={"next": next_url})
    assert page.status_code == 200, page.status_code
    return client.post("/login", data={"_xsrf": xsrf_of(page.text), "username": user, "password": password,
                                       "next": next_url})


def login_cookie(client: httpx.Client) -> str:
    value = client.cookies.get(COOKIE_NAME)
    assert value is not None
    return value


def login_id_of(cookie: str) -> str:
    """The login id inside a genuine signed cookie value (Tornado's v2 format)."""
    from tornado.web import decode_signed_value

    value = decode_signed_value(cookie_secret(SECRET_KEY.encode()), COOKIE_NAME, cookie.strip('"'), max_age_days=365)
    assert value is not None
    return value.decode()


def aged_cookie(login_id: str, age_s: float) -> str:
    """A correctly signed login cookie for ``login_id`` whose signature is ``age_s`` seconds old."""
    stamp = time.time() - age_s
    return create_signed_value(cookie_secret(SECRET_KEY.encode()), COOKIE_NAME, login_id,
                               clock=lambda: stamp).decode()


def forged_cookie(login_id: str) -> str:
    """A cookie for ``login_id`` signed with a key the server does not have."""
    return create_signed_value(cookie_secret(b"not the server's key"), COOKIE_NAME, login_id).decode()
