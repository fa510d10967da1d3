"""Components render stock Bokeh models and stay in sync across Documents."""
from __future__ import annotations

import re

import pytest
from bokeh.events import ButtonClick
from bokeh.models import Button, Column, Div, Row, Select, Slider, TextInput, Toggle

import kernelstate as ks
from kernelstate.context import activate
from kernelstate.session import Session

_alive: list[Session] = []


def model(component: ks.Column, session: Session | None = None) -> object:
    """The component's model in a fresh session's Document (added as a root, as a page does)."""
    session = session or Session()
    _alive.append(session)
    m = component.get_model(session.document, session)
    session.document.add_root(m)
    return m


@pytest.mark.parametrize(("component", "bokeh_type", "props"), [
    (lambda: ks.widgets.IntSlider(name="n", start=1, end=9, step=2, value=3), Slider, {"title": "n", "start": 1, "end": 9, "step": 2, "value": 3}),
    (lambda: ks.widgets.FloatSlider(name="f", start=0.0, end=1.0, step=0.25, value=0.5), Slider, {"title": "f", "end": 1.0, "step": 0.25, "value": 0.5}),
    (lambda: ks.widgets.Button(name="Go", button_type="primary"), Button, {"label": "Go", "button_type": "primary"}),
    (lambda: ks.widgets.TextInput(name="t", value="hi", placeholder="type"), TextInput, {"title": "t", "value": "hi", "placeholder": "type"}),
    (lambda: ks.widgets.Select(name="s", options=["a", "b"], value="b"), Select, {"title": "s", "options": ["a", "b"], "value": "b"}),
    (lambda: ks.widgets.Toggle(name="on", value=True), Toggle, {"label": "on", "active": True}),
    (lambda: ks.pane.HTML("<b>x</b>"), Div, {"text": "<b>x</b>"}),
    (lambda: ks.pane.Str("<a>"), Div, {"text": "<pre>&lt;a&gt;</pre>"}),
])
def test_component_model(component: object, bokeh_type: type, props: dict[str, object]) -> None:
    """Each component produces the expected Bokeh model with the expected properties."""
    m = model(component())  # type: ignore[operator]
    assert isinstance(m, bokeh_type)
    for key, value in props.items():
        assert getattr(m, key) == value, key


def test_markdown_renders_html() -> None:
    """Markdown renders to HTML on the server."""
    m = model(ks.pane.Markdown("# Title\n\n*x*"))
    assert "<h1>Title</h1>" in m.text and "<em>x</em>" in m.text


def test_markdown_sanitizes_html_by_default() -> None:
    """Markdown removes scripts and event handlers from embedded HTML unless sanitize=False."""
    md = ks.pane.Markdown('<img src=x onerror="alert(1)"> <script>alert(2)</script> **bold** <a href="javascript:x()">l</a>')
    m = model(md)
    assert "onerror" not in m.text and "<script" not in m.text and "javascript:" not in m.text
    assert '<img src="x">' in m.text and "<strong>bold</strong>" in m.text
    md.sanitize = False
    assert 'onerror="alert(1)"' in m.text and "<script>alert(2)</script>" in m.text
    assert ks.pane.Markdown("<script>x</script>", sanitize=False).get_model(Session().document).text.count("<script>") == 1


def test_number_format() -> None:
    """Number formats its value with format='{value} °C'."""
    n = ks.indicators.Number(name="Temp", value=21.5, format="{value} °C")
    m = model(n)
    assert "21.5 °C" in m.text and "Temp" in m.text
    n.value = 30
    assert "30 °C" in m.text


def test_layouts_and_plain_strings() -> None:
    """Row/Column/FlexBox hold children; a plain string becomes a Markdown pane."""
    col = ks.Column("## hello", ks.widgets.Button(name="b"))
    m = model(col)
    assert isinstance(m, Column)
    assert isinstance(m.children[0], Div) and "<h2>hello</h2>" in m.children[0].text
    assert isinstance(model(ks.Row("a", "b")), Row)
    flex = model(ks.FlexBox("a", "b", "c"))
    assert flex.styles["flex-wrap"] == "wrap" and len(flex.children) == 3


def test_card_title_collapse_and_hide_header() -> None:
    """Card shows its title, collapses its body and can hide its header."""
    card = ks.Card("body text", title="My card")
    m = model(card)
    header, body = m.children
    assert "My card" in header.children[1].text and body.visible
    card.collapsed = True
    assert not body.visible
    m.document.callbacks.trigger_event(ButtonClick(header.children[0]))
    assert body.visible and not card.collapsed
    card.hide_header = True
    assert not header.visible


def test_objects_change_updates_every_view() -> None:
    """Appending to a layout updates the children of each view."""
    col = ks.Column("a")
    m1, m2 = model(col), model(col)
    col.append("b")
    assert len(m1.children) == 2 and len(m2.children) == 2
    assert m1.children[1] is not m2.children[1]


def test_two_documents_stay_in_sync_both_ways() -> None:
    """One widget in two Documents: Python changes reach both; a browser change reaches the other; watchers fire once."""
    slider = ks.widgets.IntSlider(start=0, end=10, value=1)
    calls: list[int] = []
    slider.param.watch(lambda e: calls.append(e.new), "value")
    a, b = Session(), Session()
    ma, mb = model(slider, a), model(slider, b)
    assert ma is not mb and ma.document is a.document and mb.document is b.document
    slider.value = 5
    assert ma.value == mb.value == 5 and calls == [5]
    with activate(a):
        ma.value = 7  # what applying a browser PATCH-DOC does
    assert slider.value == 7 and mb.value == 7
    assert calls == [5, 7]


def test_one_model_per_document() -> None:
    """Asking twice for the same Document returns the same model."""
    w = ks.widgets.TextInput()
    s = Session()
    assert w.get_model(s.document, s) is w.get_model(s.document, s)


def test_button_clicks_and_on_click() -> None:
    """A click event increments clicks and runs on_click once per click."""
    button = ks.widgets.Button(name="b")
    seen: list[int] = []
    button.on_click(lambda e: seen.append(e.new))
    m = model(button)
    doc = m.document
    for _ in range(2):
        doc.callbacks.trigger_event(ButtonClick(m))
    assert button.clicks == 2 and seen == [1, 2]


def test_select_maps_labels_to_values() -> None:
    """Select with a dict shows labels and stores values."""
    sel = ks.widgets.Select(options={"One": 1, "Two": 2})
    m = model(sel)
    assert m.options == ["One", "Two"] and m.value == "One" and sel.value == 1
    m.value = "Two"
    assert sel.value == 2


def test_views_dropped_when_session_destroyed() -> None:
    """A destroyed session's view is forgotten (no Document kept alive)."""
    w = ks.widgets.IntSlider()
    s = Session()
    w.get_model(s.document, s)
    assert len(w.views()) == 1
    s.destroy()
    assert w.views() == []


def test_servable_marks_page_only_in_served_session() -> None:
    """servable() records the component for a served session and is a no-op in a kernel."""
    md = ks.pane.Markdown("x")
    assert md.servable() is md
    s = Session()
    with activate(s):
        md.servable(title="T", area="sidebar")
    assert s.servables == [(md, "sidebar")] and s.title == "T"
    with pytest.raises(ValueError, match="area"):
        md.servable(area="footer")


def test_unknown_objects_get_a_clear_error() -> None:
    """Putting an unsupported object in a layout says what to pass instead."""
    with pytest.raises(TypeError, match=re.escape("pass a kernelstate component")):
        ks.Column(object())


PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def test_image_json_alert_panes(tmp_path: object) -> None:
    """Image embeds PNG bytes/paths/SVG as data URLs; JSON pretty-prints escaped; Alert colors sanitized Markdown."""
    import base64
    from pathlib import Path

    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in model(ks.pane.Image(PNG, width=10)).text
    path = Path(str(tmp_path)) / "dot.png"
    path.write_bytes(PNG)
    assert 'width="10"' in model(ks.pane.Image(path, width=10)).text
    assert "data:image/svg+xml;base64," in model(ks.pane.Image('<svg xmlns="http://www.w3.org/2000/svg"/>')).text
    with pytest.raises(ValueError, match="not a PNG"):
        model(ks.pane.Image(b"GIF7 not an image"))
    with pytest.raises(FileNotFoundError, match="no image file"):
        model(ks.pane.Image("missing.png"))
    j = model(ks.pane.JSON({"a": [1, {"b": "<x>"}]}, depth=1))
    assert "x&gt;" not in j.text and "&quot;a&quot;: &quot;…&quot;" in j.text and j.text.startswith("<pre>")
    assert "&lt;x&gt;" in model(ks.pane.JSON('{"b": "<x>"}')).text
    alert = ks.pane.Alert("**Careful** <script>x</script>", alert_type="danger")
    a = model(alert)
    assert "<strong>Careful</strong>" in a.text and "<script>" not in a.text and a.styles["color"] == "#842029"
    alert.alert_type = "success"
    assert a.styles["color"] == "#0f5132"


def test_file_download_embeds_the_file_per_view(tmp_path: object) -> None:
    """FileDownload puts the file (bytes, path, or a function run per view) in the button's click handler."""
    import base64
    from pathlib import Path

    path = Path(str(tmp_path)) / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    download = ks.widgets.FileDownload(path)
    m = model(download)
    assert isinstance(m, Button) and m.label == "Download" and download.filename == "report.csv"
    (save,) = m.js_event_callbacks["button_click"]
    assert save.args["data"] == base64.b64encode(b"a,b\n1,2\n").decode() and save.args["filename"] == "report.csv"
    download.file = b"new"
    assert m.js_event_callbacks["button_click"][0].args["data"] == base64.b64encode(b"new").decode()
    per_view = ks.widgets.FileDownload(lambda: ks.state.session_id.encode(), filename="me.txt")
    s1, s2 = Session(), Session()
    d1, d2 = model(per_view, s1), model(per_view, s2)
    assert d1.js_event_callbacks["button_click"][0].args["data"] == base64.b64encode(s1.id.encode()).decode()
    assert d2.js_event_callbacks["button_click"][0].args["data"] == base64.b64encode(s2.id.encode()).decode()


def test_matplotlib_pane_renders_png_on_the_server() -> None:
    """A Matplotlib Figure becomes an embedded PNG; re-triggering `object` re-renders it."""
    figure_mod = pytest.importorskip("matplotlib.figure")
    fig = figure_mod.Figure(figsize=(2, 1))
    fig.add_subplot().plot([1, 3, 2])
    pane = ks.pane.Matplotlib(fig, dpi=50)
    m = model(pane)
    assert m.text.startswith('<img src="data:image/png;base64,iVBORw0KGgo')
    before = m.text
    fig.axes[0].plot([3, 1, 3])
    pane.param.trigger("object")
    assert m.text != before and m.text.startswith('<img src="data:image/png;base64,')
