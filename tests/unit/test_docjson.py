"""kernelstate's PULL-DOC document JSON is Bokeh's ``Document.to_json``, byte for byte.

Compared on the wire text (``serialize_json`` of the content) and the buffers.
Buffer ids are drawn from a global counter, so two serializations of the same
Document differ in them, Bokeh's own included; they are compared by position.
"""
from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Any

import bokeh.models
import pytest
from bokeh.core.has_props import is_abstract
from bokeh.core.json_encoder import serialize_json
from bokeh.core.serialization import Serialized
from bokeh.document import Document
from bokeh.model import Model
from bokeh.plotting import figure
from bokeh.themes import Theme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernelstate as ks
from kernelstate.components.widget_table import WIDGETS
from kernelstate.docjson import document_json, document_json_inline, pull_doc_reply_message
from kernelstate.loading import FileApp
from kernelstate.session import Session

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = sorted([*ROOT.glob("notebooks/0*.ipynb"), *ROOT.glob("examples/*.py"), *ROOT.glob("bench/apps/ks/*.py")])


def wire(serialized: Serialized[Any]) -> tuple[str, list[bytes]]:
    text = serialize_json(serialized.content)
    for i, buffer in enumerate(serialized.buffers):
        text = text.replace(json.dumps(buffer.id), f'"buffer-{i}"')
    return text, [bytes(buffer.data) for buffer in serialized.buffers]


def assert_identical(doc: Document) -> None:
    ours = wire(document_json(doc))
    assert ours == wire(doc.to_json())
    assert ours == wire(doc.to_json()), "serializing must not change the Document"
    assert serialize_json(document_json_inline(doc)) == serialize_json(doc.to_json(deferred=False))


# -- every component, with hypothesis-drawn parameters -----------------------------------------------------
_KWARGS: dict[str, dict[str, Any]] = {
    "DiscreteSlider": {"options": ["lo", "mid", "hi"]},
    "PaletteSelect": {"items": [("a", ["#000000"]), ("b", ["#ffffff"])], "value": "a"},
    "AutocompleteInput": {"completions": ["apple", "banana"]},
    **{name: {"options": ["a", "b", "c"]} for name in ("Select", "MultiSelect", "MultiChoice", "RadioBoxGroup",
                                                       "RadioButtonGroup", "CheckBoxGroup", "CheckButtonGroup")},
}
text = st.text(max_size=20)
widgets = st.builds(
    lambda name, label, disabled, visible, width: WIDGETS[name](
        name=label, disabled=disabled, visible=visible, width=width, **_KWARGS.get(name, {})),
    st.sampled_from(sorted(WIDGETS)), text, st.booleans(), st.booleans(), st.none() | st.integers(0, 2000))
panes = st.one_of(st.builds(ks.pane.Markdown, text), st.builds(ks.pane.Str, text), st.builds(ks.pane.HTML, text),
                  st.builds(lambda t: ks.pane.Alert(t, alert_type="info"), text),
                  st.builds(ks.pane.JSON, st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)))
leaves = widgets | panes
layouts = st.recursive(leaves, lambda children: st.one_of(
    st.builds(lambda objs: ks.Column(*objs), st.lists(children, max_size=3)),
    st.builds(lambda objs: ks.Row(*objs), st.lists(children, max_size=3)),
    st.builds(lambda objs, title: ks.Card(*objs, title=title), st.lists(children, max_size=3), text),
), max_leaves=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(roots=st.lists(layouts, min_size=1, max_size=3), themed=st.booleans(), changed=st.booleans())
def test_components_serialize_as_bokeh_does(roots: list[Any], themed: bool, changed: bool) -> None:
    session = Session()
    try:
        for component in roots:
            model = component.get_model(session.document, session)
            session.document.add_root(model)
        if themed:
            session.document.theme = Theme(json={"attrs": {"Div": {"margin": 7}, "UIElement": {"visible": False}}})
        if changed:  # values set after the first build, set back to defaults, a deleted one, containers mutated in place
            for i, model in enumerate(session.document.models):
                if i % 2 and hasattr(model, "tags"):
                    model.tags.append(i)
                if i % 3 == 0 and hasattr(model, "styles"):
                    model.styles["color"] = "red"
                if hasattr(model, "css_classes"):
                    model.css_classes = ["x"]
                    model.css_classes = []
                if hasattr(model, "height"):
                    model.height = 5
                    del model.height
        assert_identical(session.document)
    finally:
        session.destroy()


def test_table_figure_tabs_and_bokeh_panes() -> None:
    import pandas as pd

    session = Session()
    try:
        df = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, float("nan"), 2.0], "s": ["x", "y", "z"]})
        plot = figure(title="p")
        plot.line([1, 2, 3], [4, 5, 6])
        plot.scatter([1, 2], [3, 4], size=[5, 6])
        for component in (ks.widgets.DataTable(df), ks.pane.Bokeh(plot),
                          ks.Tabs(("one", ks.pane.Str("1")), ("two", ks.widgets.IntSlider(value=2)))):
            session.document.add_root(component.get_model(session.document, session))
        assert_identical(session.document)
    finally:
        session.destroy()


# -- every concrete Bokeh model, default-built -------------------------------------------------------------
MODELS = sorted((cls for cls in vars(bokeh.models).values()
                 if inspect.isclass(cls) and issubclass(cls, Model) and not is_abstract(cls)), key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
def test_every_bokeh_model(cls: type[Model]) -> None:
    doc = Document()
    try:
        doc.add_root(cls())
    except Exception:
        pytest.skip(f"{cls.__name__}() needs arguments")
    try:
        expected = wire(doc.to_json())
    except Exception as exc:  # an unset required property: ours must fail the same way
        with pytest.raises(type(exc)):
            document_json(doc)
        return
    assert wire(document_json(doc)) == expected


# -- the tutorials' and examples' documents, built as the server builds a session ----------------------------
@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_documents(path: Path) -> None:
    async def build() -> None:
        session = Session(loop=asyncio.get_running_loop())
        try:
            await FileApp(path).build(session)
            assert_identical(session.document)
        finally:
            session.destroy()
    asyncio.run(build())


def test_pull_doc_reply_message_matches_bokehs() -> None:
    from bokeh.protocol import Protocol

    session = Session()
    try:
        session.document.add_root(ks.Column("# t", ks.widgets.IntSlider(value=3)).get_model(session.document, session))
        ours, theirs = pull_doc_reply_message("req-1", session.document), Protocol().create(
            "PULL-DOC-REPLY", "req-1", session.document)
        assert ours.header["msgtype"] == theirs.header["msgtype"] == "PULL-DOC-REPLY"
        assert ours.header["reqid"] == theirs.header["reqid"] == "req-1"
        assert ours.metadata == theirs.metadata
        assert serialize_json(ours.content) == serialize_json(theirs.content)
    finally:
        session.destroy()
