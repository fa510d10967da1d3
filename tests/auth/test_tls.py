"""TLS: ``--ssl-certfile``/``--ssl-keyfile`` with a self-signed certificate made here.

In headless Chromium (the certificate trusted for the run through the
context's ``ignore_https_errors``): the login over HTTPS, the app page, its
``wss://`` WebSocket, and the login cookie marked Secure.
"""
from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kernelstate.auth.logins import COOKIE_NAME
from kernelstate.testing.plugin import ServeProcess, start_serve_process

pytestmark = pytest.mark.browser
PASSWORD = "tls shared password"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    keyfile.chmod(0o600)
    return certfile, keyfile


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("tls")
    (root / "app.py").write_text('import kernelstate as ks\nks.pane.Markdown(f"Hello {ks.state.user}").servable()\n')
    certfile, keyfile = self_signed(root)
    proc = start_serve_process(str(root / "app.py"), "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile),
                               env={"KERNELSTATE_BASIC_AUTH_PASSWORD": PASSWORD})
    yield proc
    proc.stop()


def test_login_page_and_wss_websocket_over_tls_in_chromium(server: ServeProcess, browser: Any) -> None:
    assert server.url.startswith("https://")
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(f"https://127.0.0.1:{server.port}/app")
        assert "/login" in page.url
        page.fill("#ks-username", "alice")
        page.fill("#ks-password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("text=Hello alice", timeout=30000)
        assert page.url == f"https://127.0.0.1:{server.port}/app"
        assert sockets and all(url.startswith("wss://") for url in sockets), sockets
        cookies = {c["name"]: c for c in context.cookies()}
        login = cookies[COOKIE_NAME]
        assert login["secure"] and login["httpOnly"] and login["sameSite"] == "Lax"
        assert cookies["_xsrf"]["secure"]
    finally:
        context.close()
