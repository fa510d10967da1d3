"""``component.save(path)``: what the file holds (the state at the call, its look) and what save() refuses.

Apart from the Chromium tests (test_save.py): Playwright's sync API keeps a loop marked running in the
main thread while its browser is open, and these tests run save() from an event loop of their own.
"""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sample_page import sample_page

import kernelstate as ks


def _embedded_docs(markup: str) -> list[dict[str, object]]:
    found = re.findall(r'<script type="application/json" id="[^"]+">(.*?)</script>', markup, flags=re.S)
    return [json.loads(text) for text in found]


def test_save_writes_the_state_at_the_call_and_the_default_look(tmp_path: Path) -> None:
    level, page_layout = sample_page()
    first = page_layout.save(tmp_path / "first.html", title="Levels")
    level.value = 3
    second = page_layout.save(str(tmp_path / "second.html"), template="bootstrap")

    def slider_values(path: Path) -> list[object]:
        text = json.dumps(_embedded_docs(path.read_text(encoding="utf-8")))
        return [int(v) for v in re.findall(r'"name": "Slider".*?"value": (\d+)', text)]

    assert slider_values(first) == [7] and slider_values(second) == [3]
    assert "<title>Levels</title>" in first.read_text(encoding="utf-8")
    assert 'class="ks-body ks-template-bootstrap"' in second.read_text(encoding="utf-8")


def test_save_refuses_an_unknown_template_and_a_directory(tmp_path: Path) -> None:
    _, page_layout = sample_page()
    with pytest.raises(ValueError, match="unknown template 'fancy'; choose one of basic, material, bootstrap"):
        page_layout.save(tmp_path / "page.html", template="fancy")
    with pytest.raises(IsADirectoryError, match="it is a directory"):
        page_layout.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_save_waits_for_async_bound_functions_also_from_a_running_loop(tmp_path: Path) -> None:
    """A notebook cell runs on the kernel's loop: save() builds on a loop of its own and awaits bound coroutines."""
    level = ks.widgets.IntSlider(name="level", start=0, end=10, value=4)

    async def forecast(value: int) -> str:
        await asyncio.sleep(0.05)
        return f"forecast for level {value}"

    async def countdown(value: int) -> AsyncIterator[str]:
        for n in range(value, -1, -1):
            yield f"T-{n}"
            await asyncio.sleep(0.01)

    async def in_a_cell() -> Path:
        return ks.Column(ks.bind(forecast, level), ks.bind(countdown, level)).save(tmp_path / "bound.html")

    markup = asyncio.run(in_a_cell()).read_text(encoding="utf-8")
    assert "forecast for level 4" in markup and "T-0" in markup and "T-1" not in markup
    assert level.views() == []
