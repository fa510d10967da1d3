"""A page request runs the app; its Bokeh models are built when the browser connects (issue 20).

Each app here writes a line to ``KS_TEST_MODELS_LOG`` whenever one of its
panes builds its Bokeh model, so a real ``kernelstate serve`` process shows
when that happens: never for a page that does not connect, once per session
when it does, and a model that cannot be built closes that one tab with 4500
(logged with its session id) while other tabs go on.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import Slider
from tornado.httpclient import AsyncHTTPClient

from kernelstate.endpoint import CloseCode
from kernelstate.testing import ClosedError, ProtocolClient

COUNTED = '''
import os
import kernelstate as ks

class Counted(ks.pane.Str):
    def _create_model(self, doc, session):
        with open(os.environ["KS_TEST_MODELS_LOG"], "a") as log:
            log.write(session.id[:12] + "\\n")
        if BROKEN:
            raise RuntimeError("this pane cannot be drawn")
        return super()._create_model(doc, session)

slider = ks.widgets.IntSlider(name="n", value=3, start=0, end=10)
pane = Counted(f"n={slider.value}")
slider.param.watch(lambda e: setattr(pane, "object", f"n={e.new}"), "value")
ks.Column(slider, pane).servable(title="{title}")
'''


@pytest.fixture
def served(ks_serve_process: Any, tmp_path: Path) -> tuple[Any, Path]:
    (tmp_path / "good.py").write_text("BROKEN = False\n" + COUNTED.replace("{title}", "Good"))
    (tmp_path / "broken.py").write_text("BROKEN = True\n" + COUNTED.replace("{title}", "Broken"))
    log = tmp_path / "models.log"
    log.touch()
    return ks_serve_process(str(tmp_path / "good.py"), str(tmp_path / "broken.py"),
                            env={"KS_TEST_MODELS_LOG": str(log)}), log


def built(log: Path) -> list[str]:
    return log.read_text().split()


def test_a_page_that_never_connects_builds_no_models(served: tuple[Any, Path]) -> None:
    proc, log = served
    base = proc.url.rstrip("/")

    async def main() -> None:
        pages = [await AsyncHTTPClient().fetch(base + "/good") for _ in range(3)]
        assert all(p.code == 200 and "<title>Good</title>" in p.body.decode() for p in pages)
        # The root's place is in the page though no model exists yet: BokehJS places roots by position.
        assert pages[0].body.decode().count('class="ks-root"') == 1
        assert built(log) == [], "a page request built Bokeh models before any browser connected"
        async with ProtocolClient(base + "/good") as tab:
            assert "n=3" in tab.text()
            assert len(built(log)) == 1 and built(log)[0] == tab.session_id[:12]
            slider = tab.find(Slider)[0]
            await tab.set(slider, "value", 7)
            await tab.wait_for(lambda: "n=7" in tab.text())
        assert len(built(log)) == 1, "a session built its models twice"

    asyncio.run(main())


def test_a_model_that_cannot_be_built_closes_its_tab_with_4500(served: tuple[Any, Path]) -> None:
    proc, log = served
    base = proc.url.rstrip("/")

    async def main() -> tuple[int | None, str | None, str]:
        async with ProtocolClient(base + "/good") as good:
            broken = ProtocolClient(base + "/broken")
            html = await broken.fetch_page()
            assert broken.status == 200 and "<title>Broken</title>" in html
            with pytest.raises(ClosedError) as closed:
                await broken.connect()
            code, reason = closed.value.code, closed.value.reason
            # The other tab goes on.
            slider = good.find(Slider)[0]
            await good.set(slider, "value", 9)
            await good.wait_for(lambda: "n=9" in good.text())
            # The failed session is gone: its token opens nothing any more.
            again = ProtocolClient(base + "/broken")
            again.token = broken.token
            with pytest.raises(ClosedError) as second:
                await again.connect()
            assert second.value.code == CloseCode.SESSION_EXPIRED
        return code, reason, broken.session_id

    code, reason, sid = asyncio.run(main())
    assert code == CloseCode.APP_FAILED and reason is not None and "failed while building its page" in reason
    text = proc.log_text()
    assert f"failed while building its page (session={sid})" in text
    assert "RuntimeError: this pane cannot be drawn" in text
    assert "Traceback" in text
