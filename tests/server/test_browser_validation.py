"""Issue 13 (decide and document): the server refuses browser values a widget does not allow.

Written against the API that existed before the widget table (IntSlider, Select, Button), so it shows the
old behaviour (accepting anything) failing: an out-of-bounds value, an unknown option and a click on a
disabled button are refused, logged once per session, and the tab is sent the accepted value back.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from bokeh.models import Button, Select, Slider

import kernelstate as ks
from kernelstate.testing import ProtocolClient


def test_out_of_bounds_unknown_option_and_disabled_click_are_refused(ks_server: Any,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Hostile PATCH-DOCs change nothing on the server and the tab is corrected."""
    slider = ks.widgets.IntSlider(name="n", start=0, end=10, value=5)
    pick = ks.widgets.Select(name="pick", options=["a", "b"], value="a")
    button = ks.widgets.Button(name="go", disabled=True)
    clicked: list[int] = []
    button.on_click(lambda e: clicked.append(e.new))
    server = ks_server(lambda: ks.Column(slider, pick, button))
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        async with ProtocolClient(server.url) as tab:
            s, p, b = tab.find(Slider)[0], tab.find(Select)[0], tab.find(Button)[0]
            await tab.set(s, "value", 1000)
            await tab.set(p, "value", "<not an option>")
            await tab.click(b)
            await tab.set(b, "disabled", False)
            await tab.click(b)
            await tab.wait_for(lambda: s.value == 5 and p.value == "a" and b.disabled)
            assert slider.value == 5 and pick.value == "a" and clicked == [] and button.clicks == 0
            await tab.set(s, "value", 2000)  # counted, not logged again
            await tab.wait_for(lambda: s.value == 5)

    asyncio.run(main())
    refused = [r.getMessage() for r in caplog.records if "refused browser value" in r.getMessage()]
    assert sum("IntSlider.value" in m for m in refused) == 1, refused
    assert any("Select.value" in m for m in refused) and any("Button.clicks" in m for m in refused)
