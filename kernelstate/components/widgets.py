"""Widget: the base of every input component, each a stock Bokeh widget synced both ways.

A widget class names its Bokeh model (``_bokeh_model``), the parameters it
pushes to the browser (``_synced``, parameter -> Bokeh property) and the
Bokeh properties the browser may set (``_from_browser``). The concrete
classes are generated from the declarative table in ``widget_table.py``;
the behaviour they share per kind (sliders, selections, buttons, pickers...)
lives in ``inputs.py`` and ``ranges.py``.

Browser values and UI events go through ``validation.py``: a disabled
widget, or a value outside its bounds or options, is refused and the
browser is sent the accepted value back.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import param
from bokeh.document import Document
from bokeh.model import Model

from .base import ON_CHANGE_SIGNATURE, Component
from .model_defaults import new_model
from .validation import refuse

if TYPE_CHECKING:
    from ..session import Session


class Widget(Component):
    """Base of the input widgets: ``disabled``, ``visible`` and sizing, plus the generic model build."""

    disabled = param.Boolean(default=False, doc="A disabled widget ignores the browser (refused, see validation).")
    visible = param.Boolean(default=True)
    width = param.Integer(default=None, allow_None=True, bounds=(0, None))
    height = param.Integer(default=None, allow_None=True, bounds=(0, None))
    sizing_mode: param.Selector[Any] = param.Selector(default=None, objects=[None, "fixed", "stretch_width", "stretch_height",
                                                        "stretch_both", "scale_width", "scale_height", "scale_both"])

    _bokeh_model: ClassVar[type[Model]]
    BASE_SYNCED: ClassVar[dict[str, str]] = {
        "disabled": "disabled", "visible": "visible", "width": "width", "height": "height", "sizing_mode": "sizing_mode",
    }
    #: which Bokeh property shows ``name`` ("title" for inputs, "label" for buttons), None: not shown.
    _title_prop: ClassVar[str | None] = "title"

    @classmethod
    def value_mapping(cls) -> tuple[dict[str, str], dict[str, str]]:
        """(parameter -> Bokeh property pushed to the browser, Bokeh property -> parameter the browser sets)."""
        return {}, {}

    def _create_model(self, doc: Document, session: Session) -> Model:
        model = new_model(self._bokeh_model, **self._model_props(list(self._synced)))
        # A hostile client can enable a disabled widget in its copy; put it back (events check the parameter).
        model.on_change("disabled", self._guard_disabled(weakref.ref(model), weakref.ref(session)))
        self._attach_events(model, weakref.ref(session))
        return model

    def _attach_events(self, model: Model, session_ref: weakref.ReferenceType[Session]) -> None:
        """Subclasses with UI events (clicks, menu items) register them here."""

    def _guard_disabled(self, model_ref: weakref.ReferenceType[Model],
                        session_ref: weakref.ReferenceType[Session]) -> Callable[[str, Any, Any], None]:
        def on_change(attr: str, old: Any, new: Any) -> None:
            if new != self.disabled:
                refuse(session_ref(), type(self).__name__, "disabled", new, "the browser may not change 'disabled'")
                self._send_back(model_ref(), "disabled", "disabled")
        on_change.__signature__ = ON_CHANGE_SIGNATURE  # type: ignore[attr-defined]  # see base.py
        return on_change

    def _event_allowed(self, session_ref: weakref.ReferenceType[Session], what: str, detail: Any = None) -> bool:
        """False (and the refusal recorded) for a UI event on a disabled widget."""
        if self.disabled:
            refuse(session_ref(), type(self).__name__, what, detail, "the widget is disabled")
            return False
        return True
