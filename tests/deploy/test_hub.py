"""A real JupyterHub on 127.0.0.1: configurable-http-proxy, a shared-password authenticator, local
single-user servers with kernelstate. Alice reaches kernelstate apps through the hub with her login;
Bob, logged in too, is refused hers.

Needs ``configurable-http-proxy`` (npm; ``scripts/bootstrap.sh test`` installs it into
``.venv/node``); skipped with that reason where it is missing.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import Button

from deploy_support import (APP_CELL, APPS, REPO, SERVE_LINK, KernelChannels, Process, clean_env, fetch, free_ports,
                            wait_until)
from kernelstate.testing import ProtocolClient

requests = pytest.importorskip("requests")
pytest.importorskip("jupyterhub")

pytestmark = [pytest.mark.hub, pytest.mark.deploy, pytest.mark.timeout(300)]
PASSWORD = "kernelstate-" + secrets.token_hex(8)
VENV_BIN = Path(sys.executable).parent


def find_chp() -> str | None:
    """configurable-http-proxy: where scripts/bootstrap.sh installs it (the venv's node/), or on PATH."""
    for venv in (Path(sys.prefix), REPO / ".venv"):
        local = venv / "node" / "bin" / "configurable-http-proxy"
        if local.exists():
            return str(local)
    return shutil.which("configurable-http-proxy")


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
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {homes!r} + "/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = {args!r}
c.Spawner.ip = "127.0.0.1"
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
c.Spawner.environment = {{"KERNELSTATE_PROXY_DIR": {apps!r}}}
"""


@dataclass
class Hub:
    url: str        # http://127.0.0.1:PORT/
    origin: str
    process: Process


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    chp = find_chp()
    if chp is None:
        pytest.skip("configurable-http-proxy is not installed (npm install -g configurable-http-proxy, "
                    "or scripts/bootstrap.sh test); the JupyterHub flow needs it")
    tmp = tmp_path_factory.mktemp("hub")
    apps = tmp / "apps"
    apps.mkdir()
    shutil.copy(APPS / "counter.py", apps / "counter.py")
    public_port, hub_port, api_port = free_ports(3)
    config = HUB_CONFIG.format(
        public_port=public_port, hub_port=hub_port, api_port=api_port, chp=chp,
        pid_file=str(tmp / "proxy.pid"), db=tmp / "hub.sqlite", cookie_secret=str(tmp / "cookie_secret"),
        password=PASSWORD, homes=str(tmp / "home"), singleuser=str(VENV_BIN / "jupyterhub-singleuser"),
        args=["--allow-root"] if os.geteuid() == 0 else [], apps=str(apps),
    )
    (tmp / "jupyterhub_config.py").write_text(config, encoding="utf-8")
    env = clean_env(PATH=f"{VENV_BIN}{os.pathsep}{Path(chp).parent}{os.pathsep}{os.environ['PATH']}",
                    CONFIGPROXY_AUTH_TOKEN=secrets.token_hex(16))
    process = Process([str(VENV_BIN / "jupyterhub"), "-f", str(tmp / "jupyterhub_config.py")], tmp / "hub.log",
                      env=env, cwd=tmp).start()
    origin = f"http://127.0.0.1:{public_port}"
    try:
        wait_until(lambda: requests.get(origin + "/hub/api", timeout=5).status_code == 200, 90, "jupyterhub",
                   process.alive, process.log)
        yield Hub(origin + "/", origin, process)
    finally:
        process.stop(30)
        stop_orphaned_proxy(tmp / "proxy.pid")


def stop_orphaned_proxy(pid_file: Path) -> None:
    """The hub stops configurable-http-proxy when it shuts down cleanly; if it died, the proxy is left over."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


def login(hub: Hub, user: str) -> Any:
    """A browser session logged in as ``user`` (the login form, with its XSRF token)."""
    session = requests.Session()
    assert session.get(hub.url + "hub/login", timeout=30).status_code == 200
    response = session.post(hub.url + "hub/login?next=/hub/home", timeout=30, data={
        "username": user, "password": PASSWORD, "_xsrf": session.cookies.get("_xsrf", path="/hub/")})
    assert response.status_code == 200 and response.url.endswith("/hub/home"), (response.status_code, response.url)
    return session


def cookie_header(session: Any) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{c.name}={c.value}" for c in session.cookies)}


def start_server(hub: Hub, session: Any, user: str) -> None:
    xsrf = session.cookies.get("_xsrf", path="/hub/")
    response = session.post(hub.url + f"hub/api/users/{user}/server", headers={"X-XSRFToken": xsrf}, timeout=30)
    assert response.status_code in (201, 202), response.text

    def ready() -> bool:
        model = session.get(hub.url + f"hub/api/users/{user}", headers={"X-XSRFToken": xsrf}, timeout=10).json()
        return bool(model.get("servers", {}).get("", {}).get("ready"))

    wait_until(ready, 120, f"{user}'s single-user server", hub.process.alive, hub.process.log)


def test_hub_user_reaches_kernelstate_apps_and_other_users_are_refused(hub: Hub) -> None:
    """Through the hub's proxy, with Alice's login: the launcher's apps and a %serve'd app (page + WebSocket).
    Bob's login gets neither."""
    alice = login(hub, "alice")
    start_server(hub, alice, "alice")
    user_url = hub.url + "user/alice/"
    # The first visit completes the single-user server's OAuth with the hub and sets its cookies.
    lab = alice.get(user_url + "lab", timeout=60)
    assert lab.status_code == 200 and lab.url.startswith(user_url), (lab.status_code, lab.url)
    info = alice.get(user_url + "server-proxy/servers-info", timeout=30).json()
    assert "kernelstate-proxy" in {s["name"] for s in info["server_processes"]}
    landing = alice.get(user_url + "kernelstate-proxy/", timeout=90)
    assert landing.status_code == 200 and "<title>Counter" in landing.text, landing.text[:300]
    app_url = landing.url
    xsrf = alice.cookies.get("_xsrf", path="/user/alice/")
    alice_headers = {**cookie_header(alice), "X-XSRFToken": xsrf or ""}
    bob = login(hub, "bob")

    async def flow() -> None:
        async with ProtocolClient(app_url, headers=cookie_header(alice), origin=hub.origin) as tab:
            await tab.click(tab.find(Button)[0])
            await tab.wait_for(lambda: "value is 10" in tab.text())
        started = await fetch(user_url + "api/kernels", "POST", {"name": "python3"}, alice_headers)
        assert started.code == 201, started.body
        kernel_id = json.loads(started.body)["id"]
        channels = await KernelChannels.open(user_url, kernel_id, cookie_header(alice))
        try:
            await channels.run("%load_ext kernelstate")
            await channels.run(APP_CELL)
            printed = await channels.run("%serve clicker")
            match = SERVE_LINK.search(printed)
            assert match is not None, printed
            # JUPYTERHUB_SERVICE_PREFIX: a root-relative link, opened from the notebook's own origin.
            link = match.group(0)
            assert link.startswith(f"/user/alice/proxy/{match.group(1)}/ks-"), link
            async with ProtocolClient(hub.origin + link, headers=cookie_header(alice), origin=hub.origin) as tab:
                assert "Served from a kernel" in tab.text()
                await tab.click(tab.find(Button)[0])
                await tab.wait_for(lambda: "1 clicks" in tab.text())
            # Bob, logged in to the same hub: refused Alice's apps, pages and WebSockets alike.
            for url in (app_url, hub.origin + link):
                refused = await asyncio.to_thread(bob.get, url, timeout=30)
                # The hub refuses to authorize Bob for Alice's server.
                assert refused.status_code == 403 and "/hub/api/oauth2/authorize" in refused.url, refused.url
                assert "Served from a kernel" not in refused.text and "value is" not in refused.text
                intruder = ProtocolClient(url, headers=cookie_header(alice), origin=hub.origin)
                await intruder.fetch_page()
                intruder.headers = cookie_header(bob)
                with pytest.raises(Exception, match="403"):
                    await intruder.connect()
            await channels.run("%serve --stop all")
        finally:
            channels.close()
            await fetch(user_url + f"api/kernels/{kernel_id}", "DELETE", headers=alice_headers)

    asyncio.run(flow())
