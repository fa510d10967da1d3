"""kernelstate.testing's reading helpers: ProtocolClient.visible_text and captured_log."""
from __future__ import annotations

import logging

from bokeh.model import Model
from bokeh.models import Button, Column, Div, Row, Slider, TextInput

from kernelstate.testing import ProtocolClient, captured_log


def _tab_showing(*roots: Model) -> ProtocolClient:
    tab = ProtocolClient("http://127.0.0.1:1/app")
    for root in roots:
        tab.document.add_root(root)
    return tab


def test_visible_text_is_in_document_order_without_tags() -> None:
    """Roots in order, children depth first; markup reduced to text, one line per block; entities decoded."""
    tab = _tab_showing(
        Column(children=[Div(text="<h2>Weather</h2><p>in <strong>Lima</strong> &amp; Cairo</p>"),
                         Row(children=[Button(label="Refresh"), Slider(title="Days", start=1, end=9, value=3)])]),
        Div(text='<div class="ks-number"><div>Temperature</div><div>21 °C</div></div>'),
    )
    assert tab.visible_text().splitlines() == ["Weather", "in Lima & Cairo", "Refresh", "Days: 3",
                                               "Temperature", "21 °C"]
    assert tab.visible_text(sep=" | ") == "Weather | in Lima & Cairo | Refresh | Days: 3 | Temperature | 21 °C"


def test_visible_text_leaves_out_hidden_models() -> None:
    """A hidden model and everything inside it are not visible text."""
    tab = _tab_showing(Column(children=[Div(text="shown"), Column(visible=False, children=[Div(text="hidden")]),
                                        TextInput(title="Name", value="Ada", visible=False)]))
    assert tab.visible_text() == "shown"


def test_captured_log_keeps_the_records_from_the_parents() -> None:
    """Records at the level or above are kept, not passed to the parent; level and propagation come back after."""
    logger = logging.getLogger("kernelstate.testing.demo")
    seen_by_parent: list[str] = []

    class Parent(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen_by_parent.append(record.getMessage())

    parent = Parent()
    logging.getLogger("kernelstate.testing").addHandler(parent)
    try:
        with captured_log("kernelstate.testing.demo", level=logging.WARNING) as log:
            logger.info("too quiet")
            logger.warning("refused %s", "403")
        logger.warning("after the block")
    finally:
        logging.getLogger("kernelstate.testing").removeHandler(parent)
    assert log.messages == ["refused 403"]
    assert seen_by_parent == ["after the block"]
    assert logger.propagate and logger.level == logging.NOTSET
