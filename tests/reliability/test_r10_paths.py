"""R10 (standalone): request paths never reach outside what is served.

A real ``kernelstate serve`` process serves a directory of apps and a
``--static-dirs`` root next to a sibling ``root-secret`` directory, with
symlinks from the root to the secret. Raw HTTP requests (so no client
normalizes them) with ``..``, absolute paths, the sibling prefix, symlinks,
quotes, newlines, NUL and percent-encoding get 4xx and never the secret; a
property test sends arbitrary path strings and checks the same.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SECRET = "S3CRET-FILE-CONTENT"


def raw_get(host: str, port: int, target: bytes) -> tuple[int, bytes]:
    """Send ``GET <target>`` byte for byte; (status, body). Status 0 if the server closed without answering."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + f"{host}:{port}".encode() + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1.1 "):
        return 0, data
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


@pytest.fixture
def served(ks_serve_process: Any, tmp_path: Path) -> Any:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "hello.py").write_text('"""Hello"""\nimport kernelstate as ks\nks.pane.Str("hello").servable()\n')
    secret_dir = tmp_path / "root-secret"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text(SECRET)
    (secret_dir / "evil.py").write_text(f'import kernelstate as ks\nks.pane.Str("{SECRET}").servable()\n')
    (tmp_path / "outside.py").write_text(f'import kernelstate as ks\nks.pane.Str("{SECRET}").servable()\n')
    root = tmp_path / "root"
    root.mkdir()
    (root / "public.txt").write_text("public")
    os.symlink(secret_dir / "secret.txt", root / "link.txt")
    os.symlink(secret_dir, root / "linkdir")
    os.symlink(secret_dir / "evil.py", apps / "linked.py")  # a link out of the apps folder: not served
    proc = ks_serve_process(str(apps), "--static-dirs", f"files={root}")
    return proc, tmp_path


TARGETS = [
    b"/files/../root-secret/secret.txt", b"/files/%2e%2e/root-secret/secret.txt", b"/files/%2E%2E%2Froot-secret%2Fsecret.txt",
    b"/files/..%2froot-secret/secret.txt", b"/files/....//root-secret/secret.txt", b"/files/link.txt",
    b"/files/linkdir/secret.txt", b"/files//etc/passwd", b"/files/%2fetc%2fpasswd", b"/files/{tmp}/root-secret/secret.txt",
    b"/files/.%00./root-secret/secret.txt", b"/files/public.txt%00.html", b"/files/public.txt\x00",
    b"/files/'../root-secret/secret.txt", b'/files/"../root-secret/secret.txt', b"/files/%0a../root-secret/secret.txt",
    b"/files-secret/secret.txt", b"/files/../../../../../../etc/passwd", b"/static/../../../../../../etc/passwd",
    b"/ks-static/%2e%2e/%2e%2e/server/handlers.py", b"/ks-static/../session.py", b"/static/..%5c..%5cetc%5cpasswd",
    b"/../root-secret/evil", b"/%2e%2e/root-secret/evil", b"/root-secret/evil", b"/outside", b"/../outside",
    b"/hello/../../outside", b"/hello%2f..%2f..%2foutside", b"/{tmp}/outside.py", b"/{tmp}/root-secret/evil.py",
    b"/hello'", b'/hello"', b"/hello%0aSet-Cookie:%20x=1", b"/hello%00", b"//evil.example/hello",
    b"http://evil.example/files/../root-secret/secret.txt",
]


def test_traversal_table(served: Any, figures: Any) -> None:
    """Every traversal, sibling-prefix, symlink and quoting trick gets a 4xx and never the secret."""
    proc, tmp = served
    statuses = {}
    for target in TARGETS:
        target = target.replace(b"{tmp}", str(tmp).lstrip("/").encode())
        status, body = raw_get("127.0.0.1", proc.port, target)
        statuses[target] = status
        assert SECRET.encode() not in body, target
        assert status in (0, 400, 403, 404, 405), (target, status)
    ok, body = raw_get("127.0.0.1", proc.port, b"/files/public.txt")
    assert ok == 200 and body == b"public"
    ok, body = raw_get("127.0.0.1", proc.port, b"/hello")
    assert ok == 200  # the app page itself is served
    assert not [line for line in proc.output if "Traceback" in line], proc.log_text()[-2000:]
    figures("traversal targets refused", f"{len(TARGETS)} ({sorted(set(statuses.values()))})")


def test_symlinked_app_out_of_the_folder_is_not_served(served: Any) -> None:
    """A symlink leading out of the apps directory is no app, under its own name or its target's
    (as in the Jupyter extension); nothing next to its target is reachable."""
    proc, _ = served
    for target in (b"/linked", b"/evil", b"/linked/../evil"):
        status, body = raw_get("127.0.0.1", proc.port, target)
        assert status in (400, 403, 404) and SECRET.encode() not in body, target
    assert any("not serving" in line and "linked.py" in line for line in proc.output), proc.log_text()[-2000:]


path_chars = st.sampled_from(list("abc./\\%'\"\n\r\t\x00 ?#:;@&=+$,~") + ["..", "%2e", "%2f", "%00", "%5c", "root-secret",
                                                                          "secret.txt", "files", "hello", "\u00e9", "\ufeff"])


@settings(max_examples=300, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(path_chars, min_size=1, max_size=12).map("".join))
def test_arbitrary_paths_never_escape(served: Any, path: str) -> None:
    """Any path string, sent raw or quoted: never the secret, never a 5xx."""
    proc, _ = served
    for target in {("/" + path).encode("utf-8", "surrogateescape"), ("/" + quote(path, safe="/")).encode()}:
        if b"\r" in target or b"\n" in target or b" " in target:
            target = target.replace(b"\r", b"%0d").replace(b"\n", b"%0a").replace(b" ", b"%20")
        status, body = raw_get("127.0.0.1", proc.port, target)
        assert SECRET.encode() not in body, target
        assert status == 0 or status < 500, (target, status)
