"""Issue 14: one broken app file does not take the server down at start."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient

from kernelstate.testing import ProtocolClient


def notebook(*cells: str) -> str:
    return json.dumps({
        "cells": [{"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None, "id": f"c{i}"}
                  for i, src in enumerate(cells)],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    })


def test_broken_files_answer_error_pages_and_the_rest_is_served(ks_serve_process: Any, tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text('import kernelstate as ks\nks.pane.Markdown("all good").servable()\n')
    (tmp_path / "bad_syntax.py").write_text('import kernelstate as ks\n\nx = (1,\nks.pane.Markdown("never")\ndef\n')
    (tmp_path / "bad_cell.ipynb").write_text(notebook("import kernelstate as ks", "for x in\n    pass"))
    (tmp_path / "not_json.ipynb").write_text("{ this is not a notebook")
    proc = ks_serve_process(str(tmp_path))
    base = proc.url.rstrip("/")

    async def main() -> dict[str, tuple[int, str]]:
        async with ProtocolClient(base + "/good") as tab:
            assert "all good" in tab.text()
        out = {}
        for name in ("bad_syntax", "bad_cell", "not_json"):
            response = await AsyncHTTPClient().fetch(base + "/" + name, raise_error=False)
            out[name] = (response.code, response.body.decode())
        return out

    pages = asyncio.run(main())
    # Without --dev the pages name an error id; what went wrong, and where, is in the log.
    for name in ("bad_syntax", "bad_cell", "not_json"):
        assert pages[name][0] == 500 and "Error " in pages[name][1], name
    log = proc.log_text()
    assert "<unknown>" not in log
    startup = log.split("serving 4 app(s)")[0]
    assert startup.count("cannot load app bad_syntax.py") == 1 and "line 3" in startup
    assert startup.count("cannot load app bad_cell.ipynb") == 1 and "code cell 2, line 1" in startup
    assert startup.count("cannot load app not_json.ipynb") == 1 and "does not appear to be JSON" in log
