"""Scenario 6, kernelstate inside Jupyter: a Jupyter server with the kernelstate extension.

Two measurements belong here:

(a) **app in a kernel**: a request for ``{base}kernelstate/apps/<app>``, then
    the same browser-tab protocol as everywhere else (token from the page,
    WebSocket relay, ACK, PULL-DOC, slider round trips). A request after a
    quiet spell gets a kernel from the warm pool; the request right after it
    waits for a kernel to start. :func:`app_in_kernel` does this.
(b) **cell display**: start a kernel through Jupyter's REST API, execute a cell
    that displays a component, take the relay URL and token from the
    ``display_data`` output and drive that Document over the relay
    (:func:`cell_display`).

:func:`unavailable` says why the scenario cannot run here (None when it can);
the runner prints that reason and records it instead of numbers.
"""
from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import re
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

from .protocol import BokehClient, extract_token, http_get
from .scenarios import Sizes
from .servers import APPS_DIR, HOST, ServerProcess, Target
from .stats import summarize

TOKEN = secrets.token_hex(16)


def extension_module() -> str | None:
    """The importable module that declares kernelstate's Jupyter server extension."""
    for name in ("kernelstate.jupyter", "kernelstate"):
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any import failure means "not available"
            continue
        if hasattr(module, "_jupyter_server_extension_points"):
            return name
    return None


def unavailable() -> str | None:
    """Why the Jupyter scenario cannot run in this environment, or None."""
    try:
        importlib.import_module("jupyter_server")
    except ImportError:
        return "jupyter_server is not installed"
    try:
        importlib.import_module("kernelstate.jupyter")
    except Exception as exc:  # noqa: BLE001 - report whatever stopped the import
        return f"kernelstate.jupyter is not importable ({type(exc).__name__}: {exc})"
    if extension_module() is None:
        return "no module declares _jupyter_server_extension_points (kernelstate.jupyter is not wired yet)"
    return None


def jupyter_target() -> Target:
    """A Jupyter server with the kernelstate extension, rooted at the ks bench apps."""
    ext = extension_module() or "kernelstate.jupyter"

    def argv(app: Path, port: int, flags: Sequence[str]) -> list[str]:
        return [
            sys.executable, "-m", "jupyter_server", "--no-browser",
            f"--ServerApp.ip={HOST}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={APPS_DIR / 'ks'}",
            f"--ServerApp.jpserver_extensions={ext}=True",
            *(["--allow-root"] if os.geteuid() == 0 else []), *flags,
        ]

    return Target(name="kernelstate-jupyter", label="kernelstate in Jupyter", argv=argv,
                  apps={"basic": APPS_DIR / "ks" / "basic.py"})


def _ws_path(page: bytes, default: str) -> str:
    """The relay WebSocket path the page tells bokehjs to use, else ``default``."""
    for pattern in (rb'"ws_url"\s*:\s*"([^"]+)"', rb'"app_path"\s*:\s*"([^"]+)"'):
        match = re.search(pattern, page)
        if match:
            url = match.group(1).decode()
            path = re.sub(r"^wss?://[^/]+", "", url)
            return path if path.endswith("/ws") else path.rstrip("/") + "/ws"
    return default


async def _one_app_session(srv: ServerProcess, app_path: str, rtts: list[float]) -> dict[str, float]:
    t0 = perf_counter()
    page = await http_get(srv.port, f"{app_path}?token={TOKEN}", timeout_s=120)
    if page.status != 200:
        raise RuntimeError(f"GET {app_path} -> HTTP {page.status}")
    ws_path = _ws_path(page.body, app_path + "/ws") + f"?token={TOKEN}"
    client = BokehClient(srv.port, app_path, ws_path=ws_path)
    t1 = perf_counter()
    try:
        await client.connect(extract_token(page.body))
        t2 = perf_counter()
        await client.pull()
        t3 = perf_counter()
        if client.slider_id is not None:
            for k in range(5):
                rtts.append(await client.set_slider(5000 + len(rtts) + k))
    finally:
        await client.close()
    return {"get": t1 - t0, "ws_ack": t2 - t1, "pull": t3 - t2, "total": t3 - t0}


async def app_in_kernel(srv: ServerProcess, sizes: Sizes, pool_refill_s: float = 6.0) -> dict[str, Any]:
    """Request -> live app in a kernel: from the warm pool, and right after it (a cold kernel).

    A "pooled" request comes after ``pool_refill_s`` of quiet, so a pre-started
    kernel is waiting; the "cold" request follows it at once, while the pool
    is still refilling.
    """
    app_path = f"/kernelstate/apps/{srv.app.name}"
    timings: dict[str, list[dict[str, float]]] = {"pooled": [], "cold": []}
    errors: list[str] = []
    rtts: list[float] = []
    deadline = perf_counter() + max(sizes.phase_limit_s, 60.0)
    rounds = 1 if sizes.setup_n1 < 20 else 3
    for _ in range(rounds):
        if perf_counter() > deadline or errors:
            break
        await asyncio.sleep(pool_refill_s)
        for kind in ("pooled", "cold"):
            try:
                timings[kind].append(await _one_app_session(srv, app_path, rtts))
            except Exception as exc:  # noqa: BLE001 - recorded in the results
                errors.append(f"{kind}: {type(exc).__name__}: {exc}"[:300])
                break
    out: dict[str, Any] = {"errors": len(errors), "error_samples": errors}
    for kind, runs in timings.items():
        out[f"{kind}_total_ms"] = summarize([r["total"] for r in runs])
        out[f"{kind}_get_ms"] = summarize([r["get"] for r in runs])
    out["slider_rtt_ms"] = summarize(rtts)
    if errors:
        out["server_log_tail"] = srv.log_tail(3000)
    return out


CELL_CODE = """
import kernelstate as ks
_slider = ks.widgets.IntSlider(name="n", start=0, end=1_000_000, value=1)
_echo = ks.pane.Str("value=1;")
_slider.param.watch(lambda e: setattr(_echo, "object", f"value={e.new};"), "value")
ks.Column(_slider, _echo)
"""
MIME_TYPE = "application/vnd.kernelstate.doc+json"


def _rest(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call to Jupyter's REST API with the bench token (blocking; run it in a thread)."""
    import json
    import urllib.request

    request = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}


async def _execute(channels: Any, code: str, want_doc: bool = True) -> dict[str, Any]:
    """Run ``code`` over the kernel's channels WebSocket; the kernelstate document reference it displayed."""
    import json
    import uuid

    msg_id = uuid.uuid4().hex
    await channels.send(json.dumps({
        "channel": "shell", "buffers": [], "parent_header": {}, "metadata": {},
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "bench", "session": "bench",
                   "version": "5.3", "date": ""},
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    reference: dict[str, Any] | None = None
    while True:
        raw = await asyncio.wait_for(channels.recv(), 60)
        if isinstance(raw, bytes):
            continue
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind in ("display_data", "execute_result") and MIME_TYPE in msg["content"].get("data", {}):
            # When a frontend would show the output and start connecting to its Document.
            reference = dict(msg["content"]["data"][MIME_TYPE], _arrived=perf_counter())
        elif kind == "error":
            raise RuntimeError(f"the cell raised {msg['content'].get('ename')}: {msg['content'].get('evalue')}")
        elif kind == "status" and msg["content"].get("execution_state") == "idle":
            if reference is None and want_doc:
                raise RuntimeError("the cell displayed no kernelstate document")
            return reference or {}


async def cell_display(srv: ServerProcess, sizes: Sizes) -> dict[str, Any]:
    """Cell display -> live Document over the relay, in a user's kernel started through the REST API.

    Per cell: ``execute_request`` of a cell that displays an IntSlider and a Str
    pane -> the ``display_data`` with the document reference -> the relay
    WebSocket (``kernelstate/kernels/<id>/docs/<doc>/<view>/ws``), ACK,
    PULL-DOC -> five slider round trips. The kernel's start is timed apart.
    """
    from websockets.asyncio.client import connect

    cells = 3 if sizes.setup_n1 < 20 else 10
    errors: list[str] = []
    display: list[float] = []
    live: list[float] = []
    display_to_live: list[float] = []
    rtts: list[float] = []
    t0 = perf_counter()
    kernel = await asyncio.to_thread(_rest, srv.port, "POST", "/api/kernels", {"name": "python3"})
    kernel_id = kernel["id"]
    try:
        uri = f"ws://{HOST}:{srv.port}/api/kernels/{kernel_id}/channels?token={TOKEN}"
        async with connect(uri, max_size=None, open_timeout=60) as channels:
            await _execute(channels, "import kernelstate", want_doc=False)  # the kernel is up and kernelstate imported
            kernel_ready = perf_counter() - t0
            for i in range(cells):
                try:
                    c0 = perf_counter()
                    ref = await _execute(channels, CELL_CODE)
                    c1 = ref["_arrived"]
                    path = f"/kernelstate/kernels/{kernel_id}/docs/{ref['doc_id']}/v{i}/ws"
                    client = BokehClient(srv.port, path, ws_path=f"{path}?token={TOKEN}")
                    try:
                        await client.connect(ref["token"])
                        await client.pull()
                        c2 = perf_counter()
                        for k in range(5):
                            rtts.append(await client.set_slider(1000 * (i + 1) + k))
                    finally:
                        await client.close()
                    display.append(c1 - c0)
                    live.append(c2 - c0)
                    display_to_live.append(c2 - c1)
                except Exception as exc:  # noqa: BLE001 - recorded in the results
                    errors.append(f"cell {i}: {type(exc).__name__}: {exc}"[:300])
                    break
    finally:
        await asyncio.to_thread(_rest, srv.port, "DELETE", f"/api/kernels/{kernel_id}")
    return {"kernel_ready_ms": round(1000 * kernel_ready, 1), "cells": len(live),
            "display_ms": summarize(display), "live_ms": summarize(live),
            "display_to_live_ms": summarize(display_to_live), "slider_rtt_ms": summarize(rtts),
            "errors": len(errors), "error_samples": errors}


async def run(srv: ServerProcess, sizes: Sizes) -> dict[str, Any]:
    """The Jupyter measurements against one Jupyter server (the widget transport's when anywidget is installed)."""
    out = {"app_in_kernel": await app_in_kernel(srv, sizes), "cell_display": await cell_display(srv, sizes)}
    if importlib.util.find_spec("anywidget") is not None:
        from .jupyter_widget import cell_widget

        out["cell_widget"] = await cell_widget(srv, sizes)
    return out
