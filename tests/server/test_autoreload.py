"""Issue 14: --autoreload also watches the local modules an app imports, for scripts and notebooks."""
from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from kernelstate.testing import ProtocolClient


def notebook(*cells: str) -> str:
    return json.dumps({
        "cells": [{"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None, "id": f"c{i}"}
                  for i, src in enumerate(cells)],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    })


@pytest.mark.parametrize("kind", ["script", "notebook"])
def test_editing_a_local_module_reloads_pages_and_reaches_new_sessions(tmp_path: Path, ks_server: Any, kind: str) -> None:
    tag = uuid.uuid4().hex[:8]
    helper = f"helper_{tag}"                 # a module in the app's folder
    package = tmp_path / f"lib_{tag}"        # and one in a package below it
    package.mkdir()
    (package / "__init__.py").write_text("")
    (tmp_path / f"{helper}.py").write_text("GREETING = 'hello one'\n")
    (package / "words.py").write_text("WORD = 'alpha'\n")
    code = (f"import kernelstate as ks\nimport {helper}\nfrom lib_{tag}.words import WORD\n"
            f"ks.pane.Markdown({helper}.GREETING + ' ' + WORD).servable()\n")
    if kind == "script":
        app = tmp_path / "live.py"
        app.write_text(code)
    else:
        app = tmp_path / "live.ipynb"
        app.write_text(notebook(*code.splitlines()))
    server = ks_server(str(app), autoreload=True)

    async def edit_and_reload(path: Path, text: str, expect: str) -> None:
        async with ProtocolClient(server.url + "live") as tab:
            await asyncio.sleep(0.3)
            path.write_text(text)
            code, reason = await tab.wait_closed(timeout=30)
            assert code == 4100 and "reload" in (reason or "")
        async with ProtocolClient(server.url + "live") as tab:
            assert expect in tab.text(), tab.text()

    async def main() -> None:
        async with ProtocolClient(server.url + "live") as tab:
            assert "hello one alpha" in tab.text()
        await edit_and_reload(tmp_path / f"{helper}.py", "GREETING = 'hello two'\n", "hello two alpha")
        await edit_and_reload(package / "words.py", "WORD = 'omega'\n", "hello two omega")

    asyncio.run(main())
