"""R16: small hardening items of the standalone server (issue 13, items 8, 9 and "decide and document").

- a forged token with a non-ASCII byte gets 403 (it raised TypeError, a 500, in signature comparison);
- without ``--dev`` an app's error page names an error id, never the exception's message;
- every response says who may frame it (CSP ``frame-ancestors``, ``X-Frame-Options``) and sends a
  ``Referrer-Policy``, both configurable;
- app routes are literal paths: ``a.b.py`` does not also answer ``/aXb``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import kernelstate as ks
from kernelstate.errors import ConfigError
from kernelstate.server.options import ServeOptions
from kernelstate.testing import ProtocolClient
from kernelstate.web.tokens import Signer, TokenError

from .conftest import RawWebSocket, fetch, run

SECRET = "postgres://admin:hunter2@db.internal/prod"


def app() -> Any:
    return ks.pane.Str("hardening")


def failing_app() -> Any:
    raise RuntimeError(f"cannot connect to {SECRET}")


@pytest.mark.parametrize("token", ["é", "abc.déf", "a.b\u00ff", "\u00e9.\u00e9"])
def test_signer_refuses_non_ascii_forgeries(token: str) -> None:
    """Signature comparison refuses non-ASCII input with TokenError (hmac.compare_digest raised TypeError)."""
    signer = Signer.create(None)
    with pytest.raises(TokenError):
        signer.verify(token)
    assert signer.check_session_id(token) is False


def test_non_ascii_token_is_403_not_500(ks_server: Any, figures: Any) -> None:
    """Upgrades with non-ASCII bytes in the token are refused before the upgrade with 403."""
    server = ks_server(app)

    async def main() -> list[int]:
        tab = ProtocolClient(server.url)
        await tab.fetch_page()
        body, sig = tab.token.split(".", 1)
        statuses = []
        for forged in (body + ".é" + sig[2:], body + "é." + sig, "ÿ" * 40):
            ws = RawWebSocket(server.url, forged)
            statuses.append(ws.status)
            ws.close()
        return statuses

    statuses = run(main)
    figures("non-ASCII forged tokens: statuses", statuses)
    assert statuses == [403, 403, 403]


def test_error_page_discloses_nothing_without_dev(ks_server: Any, logs: Any) -> None:
    """The 500 page shows an error id; the message (here a connection string) goes to the log only."""
    server = ks_server(failing_app)

    async def main() -> str:
        response = await fetch(server.url)
        assert response.code == 500
        return response.body.decode()

    page = run(main)
    assert SECRET not in page and "RuntimeError" not in page and "Traceback" not in page
    assert "Error " in page and "--dev" in page
    assert any(SECRET in m for m in logs.messages("kernelstate")), "the log must keep the details"


def test_error_page_shows_details_with_dev(ks_server: Any) -> None:
    server = ks_server(failing_app, dev=True)

    async def main() -> str:
        response = await fetch(server.url)
        assert response.code == 500
        return response.body.decode()

    page = run(main)
    assert "RuntimeError" in page and "Traceback" in page


def test_framing_and_referrer_headers(ks_server: Any) -> None:
    """Pages, the index, assets and 404s all say who may frame them; the defaults are same-origin only."""
    server = ks_server({"a": app, "b": app})
    strict = ks_server(app, frame_ancestors=["'none'"], referrer_policy="no-referrer")
    portal = ks_server(app, frame_ancestors=["https://portal.example.org"])

    async def headers(url: str) -> Any:
        return (await fetch(url)).headers

    async def main() -> None:
        for url in (server.url, server.url + "a", server.url + "ks-static/css/kernelstate.css", server.url + "nope"):
            h = await headers(url)
            assert h["Content-Security-Policy"] == "frame-ancestors 'self'", url
            assert h["X-Frame-Options"] == "SAMEORIGIN", url
            assert h["Referrer-Policy"] == "same-origin", url
        h = await headers(strict.url)
        assert (h["Content-Security-Policy"], h["X-Frame-Options"], h["Referrer-Policy"]) == (
            "frame-ancestors 'none'", "DENY", "no-referrer")
        h = await headers(portal.url)
        assert h["Content-Security-Policy"] == "frame-ancestors https://portal.example.org"
        assert "X-Frame-Options" not in h  # it cannot name another origin; CSP does

    run(main)


@pytest.mark.parametrize("bad", [{"frame_ancestors": ["'self'; script-src *"]}, {"referrer_policy": "sometimes"}])
def test_header_options_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        ServeOptions(**bad)


def test_app_routes_are_literal(ks_server: Any, tmp_path: Path) -> None:
    """``a.b.py`` is served at ``/a.b`` only; regex metacharacters in a file name match nothing else."""
    (tmp_path / "a.b.py").write_text("import kernelstate as ks\nks.pane.Str('dotted').servable()\n")
    (tmp_path / "c+.py").write_text("import kernelstate as ks\nks.pane.Str('plus').servable()\n")
    server = ks_server({"a.b": tmp_path / "a.b.py", "c+": tmp_path / "c+.py"})

    async def status(path: str) -> int:
        return (await fetch(server.url + path)).code

    async def main() -> dict[str, int]:
        return {p: await status(p) for p in ("a.b", "aXb", "a-b", "c+", "cc")}

    assert run(main) == {"a.b": 200, "aXb": 404, "a-b": 404, "c+": 200, "cc": 404}
