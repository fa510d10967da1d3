"""R10 (extension): app and static paths stay in their roots; request strings never become kernel code.

- Apps whose (legal) file names hold quotes, semicolons, spaces and percent signs are served as
  themselves, and every piece of code the extension sends a kernel is fixed text: no part of the
  request path appears in it (the path travels as comm data).
- Static routes: traversal, NUL and encoded tricks are 4xx, never a 500.
- Arbitrary path strings: never a 5xx, never a file outside the root.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernelstate.jupyter import relay as relay_module
from kernelstate.testing import ProtocolClient

SECRET = "S3CRET-OUTSIDE-ROOT"
ODD_NAMES = ["it's.py", 'say "hi".py', "semi;colon.py", "50% done.py", "back\\slash.py", "#hash.py"]


async def raw_get(port: int, target: bytes, token: str) -> tuple[int, bytes]:
    """One raw HTTP/1.1 GET (no client-side normalisation of the target), on the server's own loop."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: localhost:" + str(port).encode()
                     + b"\r\nAuthorization: token " + token.encode() + b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 60)
    finally:
        writer.close()
    if not data.startswith(b"HTTP/1.1 "):
        return 0, data
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every code string the extension asks a kernel to execute."""
    seen: list[str] = []
    original = relay_module.KernelRelay.execute

    async def execute(self: Any, code: str, timeout_s: float) -> dict[str, Any]:
        seen.append(code)
        return await original(self, code, timeout_s)

    monkeypatch.setattr(relay_module.KernelRelay, "execute", execute)
    return seen


@pytest.fixture
def secret_outside(jp_root_dir: Path) -> Path:
    sibling = Path(str(jp_root_dir) + "-secret")
    sibling.mkdir(exist_ok=True)
    (sibling / "secret.txt").write_text(SECRET)
    (sibling / "app.py").write_text(f"import kernelstate as ks\nks.pane.Markdown('{SECRET}').servable()\n")
    return sibling


async def test_odd_file_names_are_served_as_themselves_and_never_become_code(
        jp_serverapp: Any, http_server_client: Any, jp_http_port: int, jp_root_dir: Path, ks_ext: Any,
        executed: list[str], figures: Any) -> None:
    """Apps named with quotes, ';', '%', '\\' and '#' open as themselves; no kernel code contains any name."""
    base = f"http://localhost:{jp_http_port}{jp_serverapp.base_url}kernelstate/apps/"
    auth = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    for i, name in enumerate(ODD_NAMES[:3]):  # each app page starts a kernel: three are enough
        marker = f"odd app {i}"
        (jp_root_dir / name).write_text(f"import kernelstate as ks\nks.pane.Markdown({marker!r}).servable()\n")
        async with ProtocolClient(base + quote(name), headers=auth, timeout=90) as tab:
            assert marker in tab.text(), name
    for name in ODD_NAMES[3:]:
        (jp_root_dir / name).write_text("import kernelstate as ks\nks.pane.Markdown('x').servable()\n")
    assert executed, "the extension ran no code at all?"
    for code in executed:
        for name in ODD_NAMES:
            assert Path(name).stem not in code, f"request-derived {name!r} in kernel code"
    figures("kernel code strings checked for request text", len(executed))


async def test_static_routes_refuse_traversal_and_nul(jp_serverapp: Any, http_server_client: Any, jp_http_port: int,
                                                     ks_ext: Any, secret_outside: Path) -> None:
    """Static and ks-static: '..', encoded '..', NUL, the sibling root, absolute paths: 4xx, never 5xx or the secret."""
    token = jp_serverapp.identity_provider.token
    base = jp_serverapp.base_url.encode()
    targets = [b"kernelstate/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", b"kernelstate/static/js/%00",
               b"kernelstate/static/js/bokeh.min.js%00.txt", b"kernelstate/ks-static/..%2f..%2fserver%2ftokens.py",
               b"kernelstate/ks-static/%00", b"kernelstate/ks-static/" + str(secret_outside / "secret.txt").encode(),
               b"kernelstate/static/..%5c..%5csecret.txt", b"kernelstate/apps/%00", b"kernelstate/apps/app.py%00",
               b"kernelstate/apps/..%2f" + secret_outside.name.encode() + b"%2fapp.py"]
    for target in targets:
        status, body = await raw_get(jp_http_port, base + target, token)
        assert SECRET.encode() not in body, target
        assert 400 <= status < 500, (target, status)


path_chars = st.sampled_from(list("ab./\\%'\";:#?&= \t") + ["..", "%2e", "%2f", "%00", "%5c", "app.py", "static",
                                                            "ks-static", "apps", "-secret", "\u00e9"])


@settings(max_examples=150, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(path_chars, min_size=1, max_size=10).map("".join))
def test_arbitrary_paths_never_escape(jp_serverapp: Any, http_server_client: Any, jp_http_port: int, ks_ext: Any,
                                      jp_asyncio_loop: Any, secret_outside: Path, path: str) -> None:
    """Any path under kernelstate/apps/ and kernelstate/static/: never the secret, never a 5xx."""
    token = jp_serverapp.identity_provider.token
    for prefix in ("kernelstate/apps/", "kernelstate/static/"):
        target = (jp_serverapp.base_url + prefix + quote(path, safe="/%")).encode()
        status, body = jp_asyncio_loop.run_until_complete(raw_get(jp_http_port, target, token))
        assert SECRET.encode() not in body, target
        assert 0 < status < 500, (target, status)
