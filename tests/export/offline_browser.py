"""Opening a page from ``file://`` in Chromium with the network off, and what to check on it."""
from __future__ import annotations

import re
import time
from typing import Any

# A <script src=...> or <link href=...> that would fetch from the network.
REMOTE_RESOURCE = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
# Counts the canvas pixels (over every canvas, shadow roots included) that are clearly blue: a drawn line.
BLUE_PIXELS = """canvases => canvases.reduce((total, c) => {
  if (c.width === 0 || c.height === 0) return total;
  const ctx = c.getContext("2d");
  if (ctx === null) return total;
  const px = ctx.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0 && px[i + 2] > px[i] + 60) n++;
  return total + n;
}, 0)"""


class OfflinePage:
    """A page opened from a file with the network off; every request it made is in ``requests``."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []

    def remote_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]

    def rendered(self, roots: int, timeout_s: float = 20.0) -> None:
        """Wait until BokehJS has built the views of ``roots`` roots."""
        self.page.wait_for_function(
            "n => window.Bokeh !== undefined && Bokeh.documents.reduce((k, d) => k + d.roots().length, 0) >= n "
            "&& Object.keys(Bokeh.index).length >= n", arg=roots, timeout=timeout_s * 1000)

    def blue_pixels(self, at_least: int = 50, timeout_s: float = 20.0) -> int:
        """The blue pixels on the page's canvases, once there are ``at_least`` (a plot's line was drawn)."""
        deadline = time.monotonic() + timeout_s
        count = 0
        while time.monotonic() < deadline:
            count = int(self.page.locator("canvas").evaluate_all(BLUE_PIXELS))
            if count >= at_least:
                break
            self.page.wait_for_timeout(100)
        return count
