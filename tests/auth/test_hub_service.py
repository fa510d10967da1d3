"""``--oauth-provider jupyterhub``: kernelstate registered as a service of a real JupyterHub (its proxy, its
shared-password login). A hub user reaches the app with their hub login, no other password; a hub user
the authorize callback refuses gets the 403 page.

Needs ``configurable-http-proxy`` (``scripts/bootstrap.sh test`` installs it into ``.venv/node``).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from oauth_support import APPS, free_port, run_async

from kernelstate.testing import ProtocolClient

requests = pytest.importorskip("requests")
pytest.importorskip("jupyterhub")

pytestmark = [pytest.mark.hub, pytest.mark.timeout(180)]
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PASSWORD = "kernelstate-" + secrets.token_hex(8)
SERVICE = "/services/kernelstate"

HUB_CONFIG = """
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:{public_port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.pid_file = {pid_file!r}
c.JupyterHub.db_url = "sqlite:///{db}"
c.JupyterHub.cookie_secret_file = {cookie_secret!r}
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {password!r}
c.Authenticator.allowed_users = {{"alice", "bob"}}
c.JupyterHub.services = [{{
    "name": "kernelstate",
    "url": "http://127.0.0.1:{service_port}",
    "command": {command!r},
    "environment": {environment!r},
    "oauth_no_confirm": True,
}}]
c.JupyterHub.load_roles = [{{"name": "app-users", "users": ["alice", "bob"],
                             "scopes": ["access:services!service=kernelstate"]}}]
"""


def find_chp() -> str | None:
    for venv in (Path(sys.prefix), REPO / ".venv"):
        local = venv / "node" / "bin" / "configurable-http-proxy"
        if local.exists():
            return str(local)
    return shutil.which("configurable-http-proxy")


@dataclass
class Hub:
    origin: str
    deny_file: Path
    log: Path


def wait_for(check: Any, timeout: float, what: str, log: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:   # requests' ConnectionError is an OSError
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start\n" + log.read_text(errors="replace")[-6000:])
        time.sleep(0.2)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    chp = find_chp()
    if chp is None:
        pytest.skip("configurable-http-proxy is not installed (scripts/bootstrap.sh test installs it)")
    tmp = tmp_path_factory.mktemp("hub")
    deny_file = tmp / "deny"
    deny_file.write_text("bob\n")
    public_port, hub_port, api_port, service_port = (free_port() for _ in range(4))
    command = [sys.executable, "-m", "kernelstate.cli", "serve", str(APPS / "whoami.py"), "--port", str(service_port),
               "--address", "127.0.0.1", "--prefix", SERVICE, "--oauth-provider", "jupyterhub",
               "--allow-host", f"127.0.0.1:{public_port}", "--authorize", f"{APPS / 'authz.py'}:allow"]
    environment = {"PYTHONPATH": str(REPO), "KS_TEST_DENY_FILE": str(deny_file), "PYTHONUNBUFFERED": "1"}
    (tmp / "jupyterhub_config.py").write_text(HUB_CONFIG.format(
        public_port=public_port, hub_port=hub_port, api_port=api_port, chp=chp, pid_file=str(tmp / "proxy.pid"),
        db=tmp / "hub.sqlite", cookie_secret=str(tmp / "cookie_secret"), password=PASSWORD,
        service_port=service_port, command=command, environment=environment), encoding="utf-8")
    drop = ("JUPYTERHUB_", "KERNELSTATE_", "JPY_", "JUPYTER_", "PYTHONPATH", "CONFIGPROXY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{Path(chp).parent}{os.pathsep}{os.environ['PATH']}",
               CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(16))
    log = tmp / "hub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(VENV_BIN / "jupyterhub"), "-f", str(tmp / "jupyterhub_config.py")],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    origin = f"http://127.0.0.1:{public_port}"
    try:
        wait_for(lambda: requests.get(origin + "/hub/api", timeout=5).status_code == 200, 90, "jupyterhub", log, proc)
        wait_for(lambda: requests.get(f"http://127.0.0.1:{service_port}{SERVICE}/liveness", timeout=5).ok, 60,
                 "the kernelstate service", log, proc)
        yield Hub(origin, deny_file, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        try:   # the hub stops its proxy when it shuts down cleanly; if it died, the proxy is left over
            os.kill(int((tmp / "proxy.pid").read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


def hub_login(hub: Hub, user: str) -> Any:
    session = requests.Session()
    assert session.get(hub.origin + "/hub/login", timeout=30).status_code == 200
    response = session.post(hub.origin + "/hub/login?next=/hub/home", timeout=30, data={
        "username": user, "password": PASSWORD, "_xsrf": session.cookies.get("_xsrf", path="/hub/")})
    assert response.status_code == 200 and response.url.endswith("/hub/home"), (response.status_code, response.url)
    return session


def test_a_hub_user_reaches_the_app_with_their_hub_login(hub: Hub) -> None:
    alice = hub_login(hub, "alice")
    started = time.monotonic()
    page = alice.get(hub.origin + SERVICE + "/whoami", timeout=60)
    elapsed = time.monotonic() - started
    print(f"\nJupyterHub service login (app URL -> hub OAuth -> callback -> page): {elapsed:.2f} s")
    assert page.status_code == 200 and page.url == hub.origin + SERVICE + "/whoami", (page.status_code, page.url)
    hops = [r.headers["location"] for r in page.history]
    assert any("/hub/api/oauth2/authorize?" in h and "code_challenge_method=S256" in h for h in hops), hops
    assert any(h.startswith(SERVICE + "/oauth_callback?") for h in hops), hops
    login = alice.cookies.get("kernelstate-login", path=SERVICE + "/")
    assert login, alice.cookies

    async def text() -> str:
        async with ProtocolClient(page.url, headers={"Cookie": f"kernelstate-login={login}"},
                                  origin=hub.origin) as tab:
            return tab.text()

    shown = run_async(text())
    assert "signed in as alice" in shown, shown


def test_a_hub_user_the_authorize_callback_refuses_gets_403(hub: Hub) -> None:
    bob = hub_login(hub, "bob")    # in the deny file
    page = bob.get(hub.origin + SERVICE + "/whoami", timeout=60)
    assert page.status_code == 403, (page.status_code, page.url, page.text[:300])
    assert "You are signed in as bob" in page.text and f"{SERVICE}/logout" in page.text


def test_logout_ends_the_app_login_and_goes_on_to_the_hub_logout(hub: Hub) -> None:
    alice = hub_login(hub, "alice")
    assert alice.get(hub.origin + SERVICE + "/whoami", timeout=60).status_code == 200
    login = alice.cookies.get("kernelstate-login", path=SERVICE + "/")
    alice.get(hub.origin + SERVICE + "/logout", timeout=30)
    out = alice.post(hub.origin + SERVICE + "/logout", timeout=30, allow_redirects=False,
                     data={"_xsrf": alice.cookies.get("_xsrf", path=SERVICE + "/")})
    assert out.status_code == 302 and out.headers["location"] == "/hub/logout", (out.status_code, out.text[:300])
    copied = requests.get(hub.origin + SERVICE + "/whoami", cookies={"kernelstate-login": login}, timeout=30,
                          allow_redirects=False)
    assert copied.status_code == 302 and "/oauth_login?" in copied.headers["location"]
