"""Chromium for the static-export tests: one per module; pages opened from ``file://`` with the network off."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from offline_browser import OfflinePage


@pytest.fixture
def open_offline(browser: Any) -> Iterator[Callable[[Path], OfflinePage]]:
    contexts: list[Any] = []

    def open_file(path: Path) -> OfflinePage:
        context = browser.new_context()
        contexts.append(context)
        context.set_offline(True)
        context.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())
        page = context.new_page()
        offline = OfflinePage(page)
        page.on("request", lambda request: offline.requests.append(request.url))
        page.on("pageerror", lambda exc: offline.errors.append(str(exc)))
        page.goto(path.resolve().as_uri())
        return offline

    yield open_file
    for context in contexts:
        context.close()
