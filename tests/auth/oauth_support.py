"""Shared parts of the OAuth tests: a real OpenID provider (oidc-provider-mock behind the recording
launcher oidc_mock.py), a real ``kernelstate serve`` process, and the code flow driven step by step
over HTTP (for the refusals; the full flow runs in Chromium)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from kernelstate.testing.plugin import ServeProcess, start_serve_process

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
CLIENT_ID = "kernelstate-tests"
SECRET = "s3cret-" + os.urandom(6).hex()


def run_async[T](coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end on a loop of its own thread (Playwright's sync API holds this thread's)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


@dataclass
class Provider:
    url: str                       # the issuer: http://127.0.0.1:PORT
    proc: subprocess.Popen[bytes]

    def log(self) -> list[dict[str, Any]]:
        return list(httpx.get(self.url + "/_test/log", timeout=10).json())

    def configure(self, **config: Any) -> None:
        httpx.post(self.url + "/_test/config", content=json.dumps(config), timeout=10).raise_for_status()


@contextmanager
def oidc_provider(log_path: Path, *users: dict[str, Any], token_max_age: int = 3600) -> Iterator[Provider]:
    port = free_port()
    args = [sys.executable, str(HERE / "oidc_mock.py"), "--port", str(port), "--token-max-age", str(token_max_age)]
    for claims in users:
        args += ["--user-claims", json.dumps(claims)]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    provider = Provider(f"http://127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(provider.url + "/.well-known/openid-configuration", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the OpenID provider did not start:\n" + log_path.read_text()) from None
                time.sleep(0.1)
        yield provider
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def serve(*args: str, deny_file: Path, secret_env: bool = True) -> ServeProcess:
    """``kernelstate serve ARGS`` on 127.0.0.1 with the test authorize callback; plain http to the provider."""
    env = {"AUTHLIB_INSECURE_TRANSPORT": "1", "KS_TEST_DENY_FILE": str(deny_file)}
    if secret_env:
        env["KERNELSTATE_OAUTH_CLIENT_SECRET"] = SECRET
    process = start_serve_process(*args, "--address", "127.0.0.1", "--authorize", f"{APPS / 'authz.py'}:allow",
                                  env=env)
    process.url = process.url.replace("://localhost:", "://127.0.0.1:")
    return process


@dataclass
class Callback:
    """A login stopped just before its callback: the URL the provider sends the browser to."""

    client: httpx.Client   # the browser: its cookies include the flow's
    url: str
    code: str
    state: str
    authorize: dict[str, str]   # the authorization request's parameters


def start_login(server_url: str, path: str, sub: str) -> Callback:
    """Visit ``path`` unauthenticated, follow to the provider, log in as ``sub``: the callback, not yet followed."""
    client = httpx.Client(timeout=30)
    response = client.get(server_url.rstrip("/") + path)
    while response.status_code in (301, 302, 303, 307) and "/oauth2/authorize" not in response.headers["location"]:
        response = client.get(httpx.URL(str(response.url)).join(response.headers["location"]))
    assert response.status_code == 302, (response.status_code, response.text[:500])
    authorize_url = response.headers["location"]
    granted = client.post(authorize_url, data={"sub": sub})
    assert granted.status_code == 302, (granted.status_code, granted.text[:500])
    callback = granted.headers["location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    params = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    return Callback(client, callback, query["code"], query["state"], params)
