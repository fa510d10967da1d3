"""DataTable: a pandas DataFrame in Bokeh's DataTable, with selection and cell edits synced both ways.

Each view gets its own ColumnDataSource. Python-side changes reach every view
as the smallest Bokeh change that says them:

- ``table.value = df`` replaces the data (one ``data`` change);
- ``table.stream(rows, rollover=N)`` appends rows as a Bokeh *ColumnsStreamed*
  patch (and drops the oldest beyond ``rollover``), not a reload;
- ``table.patch({"col": [(row, value), ...]})`` sends a *ColumnsPatched*.

With ``page_size`` the table shows one page at a time under a pager (the
rows stay in the browser; a page turn changes only which rows the view
shows); ``page`` is shared by every view.

From the browser, ``selection`` (row positions) and, with ``editable=True``,
cell edits come back. An edit is converted to its column's dtype and applied
to ``value`` (a new DataFrame, so watchers fire once) and patched into the
other views; an edit to a read-only table, an unknown row or column, or a
value that does not convert is refused and the cell is patched back (see
``validation.py``). ``pandas`` is needed only once a DataFrame is used.
"""
from __future__ import annotations

import functools
import math
import numbers
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import param
from bokeh.document import Document
from bokeh.events import ButtonClick, Event
from bokeh.model import Model
from bokeh.models import CDSView, ColumnDataSource, IndexFilter
from bokeh.models import Column as BkColumn
from bokeh.models import Row as BkRow
from bokeh.models.widgets import Button as BkButton
from bokeh.models.widgets import Div
from bokeh.models.widgets import tables as bkt

from .validation import Refused, refuse
from .widgets import Widget

if TYPE_CHECKING:
    from ..session import Session

INDEX = "index"


def _pd() -> Any:
    try:
        import pandas  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError("DataTable needs pandas: pip install 'kernelstate[data]' (or pandas)") from None
    return pandas


def _columns_of(df: Any, show_index: bool) -> dict[str, Any]:
    # Copies: pandas hands out read-only views, and Bokeh patches the columns in place.
    data = {str(c): df[c].to_numpy(copy=True) for c in df.columns}
    if show_index:
        data = {INDEX: df.index.to_numpy(copy=True), **data}
    return data


def _fresh(model: Any) -> Any:
    """A copy of a formatter/editor model: a model can belong to one Document only."""
    return type(model)(**model.properties_with_values(include_defaults=False))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def _convert(value: Any, dtype: Any) -> Any:
    pd = _pd()
    kind = getattr(dtype, "kind", "O")
    if kind in "iu":
        if not _is_number(value) or value != int(value):
            raise Refused(f"{value!r} is not a whole number")
        return int(value)
    if kind == "f":
        if not _is_number(value):
            raise Refused(f"{value!r} is not a number")
        return float(value)
    if kind == "b":
        if not isinstance(value, (bool, np.bool_)):
            raise Refused(f"{value!r} is not true/false")
        return bool(value)
    if kind == "M":
        if not _is_number(value):
            raise Refused(f"{value!r} is not a datetime in ms since the epoch")
        return pd.Timestamp(value, unit="ms")
    if not isinstance(value, str):
        raise Refused(f"{value!r} is not text")
    return value


class DataTable(Widget):
    """A DataFrame as an interactive table: sorting, formatters, editors, selection and edits."""

    value = param.Parameter(default=None, doc="The pandas DataFrame shown.")
    selection = param.List(default=[], item_type=int, doc="Positions of the selected rows.")
    editable = param.Boolean(default=False)
    sortable = param.Boolean(default=True)
    show_index = param.Boolean(default=True)
    selectable: param.Selector[Any] = param.Selector(default=True, objects=[True, False, "checkbox"])
    formatters = param.Dict(default={}, doc="Column name -> Bokeh CellFormatter.")
    editors = param.Dict(default={}, doc="Column name -> Bokeh CellEditor.")
    titles = param.Dict(default={}, doc="Column name -> header title.")
    row_height = param.Integer(default=25, bounds=(1, None))
    page_size = param.Integer(default=None, allow_None=True, bounds=(1, None),
                              doc="Rows per page, with a pager under the table (set when creating it); None: scroll.")
    page = param.Integer(default=0, bounds=(0, None), doc="The page shown (0-based), for every view.")

    _bokeh_model = bkt.DataTable
    _title_prop = None
    _synced: ClassVar[dict[str, str]] = {
        **Widget.BASE_SYNCED, "editable": "editable", "sortable": "sortable", "selectable": "selectable",
        "row_height": "row_height", "value": "source", "selection": "source", "show_index": "columns",
        "formatters": "columns", "editors": "columns", "titles": "columns", "page": "source", "page_size": "source",
    }

    def __init__(self, value: Any = None, **params: Any) -> None:
        super().__init__(value=_pd().DataFrame() if value is None else value, **params)
        self._next_op: tuple[Any, ...] | None = None

    # -- building ---------------------------------------------------------------------
    def _table_columns(self) -> list[bkt.TableColumn]:
        columns = []
        for name in _columns_of(self.value.head(0), self.show_index):
            dtype = self.value.index.dtype if name == INDEX else self.value[self._column(name)].dtype
            formatter = self.formatters.get(name)
            editor = self.editors.get(name)
            columns.append(bkt.TableColumn(
                field=name, title=self.titles.get(name, name),
                formatter=_fresh(formatter) if formatter is not None else _default_formatter(dtype),
                editor=_fresh(editor) if editor is not None else _default_editor(dtype),
            ))
        return columns

    def _column(self, name: str) -> Any:
        for c in self.value.columns:
            if str(c) == name:
                return c
        raise Refused(f"no column {name!r}")

    def _create_model(self, doc: Document, session: Session) -> Model:
        source = ColumnDataSource(data=_columns_of(self.value, self.show_index))
        source.selected.indices = list(self.selection)
        paging: dict[str, Any] = {}
        if self.page_size is not None:
            paging["view"] = CDSView(filter=IndexFilter(indices=self._page_rows()))
        table = bkt.DataTable(source=source, columns=self._table_columns(), index_position=None, **paging,
                              **self._model_props([n for n in self._synced if n not in ("value", "selection")
                                                   and self._synced[n] not in ("columns", "source")]))
        session_ref, source_ref = weakref.ref(session), weakref.ref(source)
        source.selected.on_change("indices", self._browser_change(weakref.ref(source.selected), session_ref,
                                                                  "indices", "selection"))
        source.on_change("data", functools.partial(self._browser_data, source_ref, session_ref))
        if self.page_size is None:
            return table
        return BkColumn(children=[table, self._pager(session_ref)], css_classes=["ks-paged-table"])

    # -- pages ------------------------------------------------------------------------------
    def _last_page(self) -> int:
        return max(0, (len(self.value) - 1) // self.page_size) if self.page_size else 0

    def _page_rows(self) -> list[int]:
        if self.page_size is None:
            return list(range(len(self.value)))
        start = min(self.page, self._last_page()) * self.page_size
        return list(range(start, min(start + self.page_size, len(self.value))))

    def _page_text(self) -> str:
        return f"page {min(self.page, self._last_page()) + 1} of {self._last_page() + 1}"

    def _pager(self, session_ref: weakref.ReferenceType[Session]) -> BkRow:
        def turn(delta: int) -> Callable[[Event], None]:
            def on_click(event: Event) -> None:
                if self._event_allowed(session_ref, "page", delta) and 0 <= self.page + delta <= self._last_page():
                    self.page += delta
            return on_click
        back, forward = BkButton(label="‹", width=40), BkButton(label="›", width=40)
        back.on_event(ButtonClick, turn(-1))
        forward.on_event(ButtonClick, turn(+1))
        return BkRow(children=[back, Div(text=self._page_text(), css_classes=["ks-page"]), forward])

    def _show_page(self, model: Any) -> None:
        if isinstance(model, BkColumn):
            table, pager = cast(list[Any], model.children)
            table.view.filter.indices = self._page_rows()
            pager.children[1].text = self._page_text()

    @param.depends("value", "page_size", watch=True)
    def _clamp_page(self) -> None:
        self.page = min(self.page, self._last_page())

    # -- browser -> python --------------------------------------------------------------
    def _from_model(self, prop: str, value: Any) -> Any:
        if prop == "indices":
            if not isinstance(value, list) or not all(isinstance(i, int) and 0 <= i < len(self.value) for i in value):
                raise Refused(f"selection must be row positions in 0..{len(self.value) - 1}")
            return list(value)
        return value

    def _to_model(self, name: str, value: Any) -> Any:
        return list(value) if name == "selection" else value

    def _browser_data(self, source_ref: weakref.ReferenceType[ColumnDataSource],
                      session_ref: weakref.ReferenceType[Session], attr: str, old: Any, new: Any) -> None:
        source = source_ref()
        if source is None or self._applying:
            return
        edits: list[tuple[str, int, Any]] = []
        for name, column in new.items():
            if name == INDEX or name not in source.data:
                continue
            try:
                current = self.value[self._column(name)].to_numpy()
            except Refused:
                continue
            if len(column) != len(current):
                edits.append((name, -1, len(column)))
                continue
            edits.extend((name, i, v) for i, (v, was) in enumerate(zip(column, current, strict=True))
                         if not _equal(v, was))
        if not edits:
            return
        try:
            if self.disabled or not self.editable:
                raise Refused("the table is not editable")
            df = self.value.copy()
            patches: dict[str, list[tuple[int, Any]]] = {}
            for name, row, value in edits:
                if row < 0:
                    raise Refused(f"column {name!r} changed length")
                col = self._column(name)
                df.iloc[row, df.columns.get_loc(col)] = _convert(value, df[col].dtype)
                patches.setdefault(name, []).append((row, value))
        except Refused as exc:
            refuse(session_ref(), type(self).__name__, "value", edits[:3], str(exc))
            self._restore(source, edits)
            return
        self._next_op = ("patch", patches, source)
        self.value = df

    def _restore(self, source: ColumnDataSource, edits: list[tuple[str, int, Any]]) -> None:
        """Patch the refused cells back (a reload here would change ``data`` while Bokeh notifies about it)."""
        patches: dict[str, list[tuple[int, Any]]] = {}
        for name, row, _ in edits:
            if row >= 0:
                patches.setdefault(name, []).append((row, self.value[self._column(name)].iloc[row]))
        self._applying = True
        try:
            if patches:
                source.patch(patches)
        finally:
            self._applying = False

    _applying = False

    # -- python -> browser --------------------------------------------------------------
    def stream(self, rows: Any, rollover: int | None = None) -> None:
        """Append ``rows`` (a DataFrame or dict of columns); keep the last ``rollover`` rows. Sent as a stream patch."""
        pd = _pd()
        new = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        df = pd.concat([self.value, new]) if len(self.value) else new
        if rollover is not None and len(df) > rollover:
            df = df.iloc[len(df) - rollover:]
        self._next_op = ("stream", _columns_of(new, self.show_index), rollover, None)
        self.value = df

    def patch(self, patches: dict[str, list[tuple[int, Any]]]) -> None:
        """Set cells: ``{"column": [(row_position, value), ...]}``. Sent as a ColumnsPatched patch."""
        df = self.value.copy()
        for name, changes in patches.items():
            col = self._column(name)
            for row, value in changes:
                df.iloc[row, df.columns.get_loc(col)] = value
        self._next_op = ("patch", patches, None)
        self.value = df

    def _on_param_change(self, *events: param.parameterized.Event) -> None:
        op, self._next_op = self._next_op, None
        names = [e.name for e in events]
        if op is None or names != ["value"]:
            super()._on_param_change(*events)
            return
        for view in self.views():
            session = view.session()
            if session is not None and not session.destroyed:
                session.call_soon(functools.partial(self._apply_op, view, op))

    def _apply_op(self, view: Any, op: tuple[Any, ...]) -> None:
        source = _table_of(view.model).source
        self._applying = True
        try:
            if op[0] == "stream":
                source.stream(op[1], rollover=op[2])
                self._show_page(view.model)
            elif op[2] is not source:  # the view whose browser made the edit has it already
                source.patch(op[1])
        finally:
            self._applying = False

    def _update_view(self, view: Any, names: list[str]) -> None:
        model = _table_of(view.model)
        self._applying = True
        try:
            if "value" in names or "show_index" in names:
                model.source.data = _columns_of(self.value, self.show_index)
            if "selection" in names:
                model.source.selected.indices = list(self.selection)
            if {"value", "show_index", "formatters", "editors", "titles"} & set(names):
                model.columns = self._table_columns()
            props = self._model_props([n for n in names if self._synced.get(n) not in ("columns", "source")])
            if props:
                model.update(**props)
            if {"value", "page", "page_size"} & set(names):
                self._show_page(view.model)
        finally:
            self._applying = False


def _table_of(model: Any) -> Any:
    """The DataTable of a view (a paged table is a Column of the table and its pager)."""
    return model.children[0] if isinstance(model, BkColumn) else model


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) or bool(_isnan(a) and _isnan(b))
    except (TypeError, ValueError):
        return False


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _default_formatter(dtype: Any) -> bkt.CellFormatter:
    kind = getattr(dtype, "kind", "O")
    if kind in "iu":
        return bkt.NumberFormatter(format="0,0")
    if kind == "f":
        return bkt.NumberFormatter(format="0,0.[000]")
    if kind == "M":
        return bkt.DateFormatter(format="%Y-%m-%d %H:%M:%S")
    if kind == "b":
        return bkt.BooleanFormatter()
    return bkt.StringFormatter()


def _default_editor(dtype: Any) -> bkt.CellEditor:
    kind = getattr(dtype, "kind", "O")
    if kind in "iu":
        return bkt.IntEditor()
    if kind == "f":
        return bkt.NumberEditor()
    if kind == "b":
        return bkt.CheckboxEditor()
    return bkt.StringEditor()


class DataFrame(DataTable):
    """``ks.pane.DataFrame(df)``: a read-only, sortable table of ``object`` (a DataFrame)."""

    def __init__(self, object: Any = None, **params: Any) -> None:
        params.setdefault("editable", False)
        super().__init__(value=object, **params)

    @property
    def object(self) -> Any:
        return self.value

    @object.setter
    def object(self, df: Any) -> None:
        self.value = df
