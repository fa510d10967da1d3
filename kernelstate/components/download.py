"""FileDownload: a button that saves a file in the browser.

The file is ``file`` -- bytes, a path, or a function returning bytes (called
once per view, with the viewer's session active, and again when ``file``
changes). Its contents travel with the view (base64 in the button's click
handler), so a click needs no round trip to the server; keep it to files of
a few MB. ``clicks`` counts the clicks the server hears of (refused while
``disabled``, see ``validation.py``).
"""
from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import param
from bokeh.document import Document
from bokeh.model import Model
from bokeh.models import CustomJS
from bokeh.models.widgets import Button as BkButton

from ..context import activate
from .inputs import ClickButton  # clicks, counted once per accepted click, and on_click
from .widgets import Widget

if TYPE_CHECKING:
    from ..session import Session

_SAVE = """
const link = document.createElement("a");
link.href = "data:" + mime + ";base64," + data;
link.download = filename;
document.body.appendChild(link);
link.click();
link.remove();
"""


class FileDownload(ClickButton):
    """A button that downloads ``file`` (bytes, a path, or a function returning bytes) as ``filename``."""

    file = param.Parameter(default=None, doc="bytes, a path, or a function returning bytes")
    filename = param.String(default="download", doc="The name the browser saves the file under.")
    mime_type = param.String(default="application/octet-stream")
    button_type: param.Selector[Any] = param.Selector(
        default="default", objects=["default", "primary", "success", "warning", "danger", "light"])
    _bokeh_model = BkButton
    _title_prop = "label"
    _synced: ClassVar[dict[str, str]] = {
        **Widget.BASE_SYNCED, "name": "label", "button_type": "button_type",
        "file": "js_event_callbacks", "filename": "js_event_callbacks", "mime_type": "js_event_callbacks",
    }

    def __init__(self, file: Any = None, **params: Any) -> None:
        params.setdefault("name", "Download")
        if "filename" not in params and isinstance(file, (str, os.PathLike)):
            params["filename"] = Path(file).name
        super().__init__(file=file, **params)

    def _contents(self, session: Session) -> bytes:
        file = self.file
        if callable(file):
            with activate(session):
                file = file()
        if isinstance(file, (str, os.PathLike)):
            return Path(file).read_bytes()
        if isinstance(file, (bytes, bytearray)):
            return bytes(file)
        if file is None:
            return b""
        raise TypeError(f"FileDownload.file must be bytes, a path or a function returning bytes; got {type(file).__name__}")

    def _save_js(self, session: Session) -> CustomJS:
        data = base64.b64encode(self._contents(session)).decode()
        return CustomJS(args={"data": data, "filename": self.filename, "mime": self.mime_type}, code=_SAVE)

    def _create_model(self, doc: Document, session: Session) -> Model:
        model = super()._create_model(doc, session)
        model.js_on_event("button_click", self._save_js(session))
        return model

    def _model_props(self, names: list[str]) -> dict[str, Any]:
        return super()._model_props([n for n in names if self._synced[n] != "js_event_callbacks"])

    def _update_view(self, view: Any, names: list[str]) -> None:
        super()._update_view(view, names)
        session = view.session()
        if session is not None and {"file", "filename", "mime_type"} & set(names):
            view.model.js_event_callbacks = {"button_click": [self._save_js(session)]}
