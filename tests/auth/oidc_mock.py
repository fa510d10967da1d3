"""oidc-provider-mock behind a recording, PKCE-enforcing WSGI layer: ``python oidc_mock.py --port N [mock flags]``.

The mock accepts a ``code_challenge`` and ignores it (a wrong ``code_verifier``
still gets tokens), so this layer, on the wire:

- records every authorization and token request's parameters (``GET /_test/log``);
- remembers the challenge of each code it hands out and refuses a token request whose
  ``code_verifier`` does not match it (``invalid_grant``), or that has none;
- ``POST /_test/config`` ``{"token_host": "HOST"}`` makes later token responses come from
  another issuer (the mock names its issuer after the request's forwarded host).
"""
from __future__ import annotations

import io
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import uvicorn
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from oidc_provider_mock import app as mock_app
from oidc_provider_mock._storage import User

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class Recorder:
    def __init__(self, inner: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self.inner = inner
        self.log: list[dict[str, Any]] = []
        self.challenges: dict[str, tuple[str | None, str | None]] = {}
        self.token_host: str | None = None
        self.lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path == "/_test/log":
            return self._json(start_response, self.log)
        if path == "/_test/config" and method == "POST":
            config = json.loads(self._body(environ) or b"{}")
            self.token_host = config.get("token_host")
            return self._json(start_response, {"ok": True})
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if path == "/oauth2/authorize":
            with self.lock:
                self.log.append({"endpoint": "authorize", "method": method, **query})
            return self._authorize(environ, start_response, query)
        if path == "/oauth2/token" and method == "POST":
            form = {k: v[0] for k, v in parse_qs(self._body(environ).decode()).items()}
            with self.lock:
                self.log.append({"endpoint": "token", **form})
            if form.get("grant_type") == "authorization_code":
                challenge, how = self.challenges.get(form.get("code", ""), (None, None))
                verifier = form.get("code_verifier")
                if challenge is not None and (how != "S256" or verifier is None
                                              or create_s256_code_challenge(verifier) != challenge):
                    return self._json(start_response, {"error": "invalid_grant",
                                                       "error_description": "Code challenge failed."}, "400 Bad Request")
            if self.token_host:
                environ["HTTP_X_FORWARDED_HOST"] = self.token_host
        return self.inner(environ, start_response)

    def _authorize(self, environ: Environ, start_response: StartResponse, query: dict[str, str]) -> Iterable[bytes]:
        def remember(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            for name, value in headers:
                if name.lower() == "location":
                    code = parse_qs(urlparse(value).query).get("code")
                    if code:
                        self.challenges[code[0]] = (query.get("code_challenge"), query.get("code_challenge_method"))
            return start_response(status, headers, *exc)
        return self.inner(environ, remember)

    @staticmethod
    def _body(environ: Environ) -> bytes:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    @staticmethod
    def _json(start_response: StartResponse, value: Any, status: str = "200 OK") -> Iterable[bytes]:
        data = json.dumps(value).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def main(argv: list[str]) -> None:
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"   # the provider runs on plain http on 127.0.0.1
    port = int(argv[argv.index("--port") + 1])
    max_age = int(argv[argv.index("--token-max-age") + 1]) if "--token-max-age" in argv else 3600
    users = [User(sub=c["sub"], claims=c) for c in
             (json.loads(argv[i + 1]) for i, a in enumerate(argv) if a == "--user-claims")]
    inner = mock_app(access_token_max_age=timedelta(seconds=max_age), user_claims=users)
    uvicorn.run(Recorder(inner), interface="wsgi", host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
