"""``ks.state.location``: the page's URL query synced both ways with component parameters.

::

    search = ks.widgets.TextInput(name="Search")
    ks.state.location.sync(search, {"value": "q"})   # /app?q=hello opens with "hello"

One :class:`Location` per session (``session.location``); ``ks.state.location``
is the current session's. What it does:

- **From the request.** ``sync`` reads each name from the session's
  :class:`~kernelstate.request.RecordedRequest` (``args[name]``), so the read
  is recorded and ``--reuse-sessions`` caches the page only under a key that
  covers the name. A value is checked like any browser value
  (:func:`~kernelstate.components.base.check_browser_value`: type, bounds,
  options, a disabled widget); a bad one is refused with a log line
  (:mod:`kernelstate.components.validation`) and the parameter keeps its value.
- **Server -> browser.** The synced part of the query lives in one stock Bokeh
  model of the session's Document: a hidden ``TextInput`` named
  :data:`MODEL_NAME`, added as the last root once the page is built (the
  page's own roots keep their places). Its ``value`` is a JSON object
  ``{query name: [values]}`` (``[]``: the name is left out of the URL, as it
  is while the parameter has the value it had when it was synced). When a
  synced parameter changes the server sets ``value``, and a ``CustomJS``
  ``js_on_change`` callback writes those names into the browser's URL with
  ``history.replaceState``: no reload, no new history entry, the other query
  arguments and the fragment kept as they are.
- **Browser -> server.** On back/forward (``popstate``) the page runtime
  (``static/js/kernelstate.js``) sets the model's ``value`` to the synced
  names' values in the URL now shown; the change reaches the server as a
  normal PATCH-DOC and each value goes through the same check as above
  (a name missing from the URL means the value it had when synced). A
  refused value is sent back, so the URL shows what the app accepted.

How values are written in the query (lists as repeated names, dates in
ISO 8601...) is :mod:`kernelstate.querystring`. In a notebook cell or a
kernel there is no page URL: ``sync`` does nothing and says so once.
"""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import param
from bokeh.models import CustomJS
from bokeh.models.widgets import TextInput

from .components.base import check_browser_value
from .components.validation import refuse
from .querystring import QueryCodec, codec_for

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)

MODEL_NAME = "kernelstate-location"

#: Runs in the browser when the model's value changes: write the synced names into the URL.
REPLACE_QUERY_JS = """
let wanted;
try { wanted = JSON.parse(cb_obj.value); } catch (err) { return; }
if (wanted === null || typeof wanted !== "object" || Array.isArray(wanted)) return;
const own = (name) => Object.prototype.hasOwnProperty.call(wanted, name);
const decode = (s) => { try { return decodeURIComponent(s.replace(/\\+/g, " ")); } catch (err) { return s; } };
const pieces = (name) => (Array.isArray(wanted[name]) ? wanted[name] : []).map(
  (v) => encodeURIComponent(name) + "=" + encodeURIComponent(String(v)));
const kept = [];
const written = new Set();
const search = window.location.search.replace(/^\\?/, "");
for (const piece of search ? search.split("&") : []) {
  const name = decode(piece.split("=")[0]);
  if (!own(name)) { kept.push(piece); continue; }
  if (!written.has(name)) { written.add(name); kept.push(...pieces(name)); }
}
for (const name of Object.keys(wanted)) { if (!written.has(name)) kept.push(...pieces(name)); }
const query = kept.join("&");
const url = window.location.pathname + (query ? "?" + query : "") + window.location.hash;
if (url !== window.location.pathname + window.location.search + window.location.hash) {
  window.history.replaceState(window.history.state, "", url);
}
"""


@dataclass
class Binding:
    """One ``sync`` call: parameters of one object and the query names they are written under."""

    obj: param.Parameterized
    names: dict[str, str]                                        # parameter -> query name
    codecs: dict[str, QueryCodec]
    defaults: dict[str, Any] = field(default_factory=dict)       # what a URL without the name means
    watcher: Any = None


@functools.cache
def _say_needs_a_served_page() -> None:
    log.warning("ks.state.location.sync() does nothing here: location sync needs a page served by kernelstate "
                "(kernelstate serve, ks.serve or the Jupyter extension's apps); a notebook cell has no URL of "
                "its own. (Said once per process.)")


class Location:
    """The URL query of one session's page, synced with parameters (see the module docstring)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._bindings: list[Binding] = []
        self._model: TextInput | None = None
        self._page_built = False
        self._pushing = False
        session.on_destroy(self._session_destroyed)

    # -- the public API ---------------------------------------------------------------
    def sync(self, obj: param.Parameterized, parameters: Mapping[str, str] | Iterable[str] | None = None) -> None:
        """Keep ``obj``'s parameters and the page's URL query in step.

        ``parameters`` maps parameter names to query names (``{"value": "q"}``);
        a list of names uses each parameter's own name; ``None`` syncs what the
        browser can set on a widget (its ``value``). The query of the request
        that opened the page sets the parameters at once. Raises ValueError for
        an unknown parameter or a query name already synced, TypeError for a
        parameter whose values cannot be written in a URL.
        """
        session = self._session
        if session.kind != "served":
            _say_needs_a_served_page()
            return
        names = self._names(obj, parameters)
        codecs = {p: codec_for(obj, p) for p in names}
        binding = Binding(obj, names, codecs, {p: getattr(obj, p) for p in names})
        args = session.request.args
        from_request = {p: [v.decode("utf-8", "replace") for v in args.get(q) or []] for p, q in names.items()}
        self._apply(binding, {p: texts for p, texts in from_request.items() if texts})
        binding.watcher = obj.param.watch(self._param_changed, list(names))
        self._bindings.append(binding)
        if self._page_built:
            session.call_soon(self._show)

    def unsync(self, obj: param.Parameterized, parameters: Iterable[str] | None = None) -> None:
        """Stop syncing ``obj`` (or only the named parameters); the URL keeps what it shows."""
        if self._session.kind != "served":
            _say_needs_a_served_page()
            return
        dropped = set(parameters) if parameters is not None else None
        for binding in [b for b in self._bindings if b.obj is obj]:
            obj.param.unwatch(binding.watcher)
            for name in list(binding.names) if dropped is None else [n for n in binding.names if n in dropped]:
                del binding.names[name]
            if binding.names:
                binding.watcher = obj.param.watch(self._param_changed, list(binding.names))
            else:
                self._bindings.remove(binding)
        self._session.call_soon(self._push)

    @property
    def query(self) -> dict[str, list[str]]:
        """The synced names and the values the URL shows for them (``[]``: left out of the URL)."""
        query: dict[str, list[str]] = {}
        for binding in self._bindings:
            for name, qname in binding.names.items():
                value = getattr(binding.obj, name)
                query[qname] = [] if _equal(value, binding.defaults[name]) else binding.codecs[name].encode(value)
        return query

    @property
    def model(self) -> TextInput | None:
        """The hidden model carrying the query to and from the browser (None until the page has one)."""
        return self._model

    def page_built(self) -> None:
        """Framework use (``loading.populate_document``): the page's roots are in the Document."""
        self._page_built = True
        if self._bindings:
            self._show()

    # -- inside -----------------------------------------------------------------------------
    def _names(self, obj: param.Parameterized, parameters: Mapping[str, str] | Iterable[str] | None) -> dict[str, str]:
        if not isinstance(obj, param.Parameterized):
            raise TypeError(f"location.sync needs a component or another param.Parameterized; got {obj!r:.80}")
        if parameters is None:
            parameters = ["value"]
        names = dict(parameters) if isinstance(parameters, Mapping) else {p: p for p in parameters}
        taken = {q: b for b in self._bindings for q in b.names.values()}
        for pname, qname in names.items():
            if pname not in obj.param:
                known = ", ".join(p for p in obj.param if p != "name")
                raise ValueError(f"{type(obj).__name__} has no parameter {pname!r} to sync with the URL; "
                                 f"its parameters: {known}")
            if not isinstance(qname, str) or not qname:
                raise ValueError(f"the query name for {type(obj).__name__}.{pname} must be a non-empty string; "
                                 f"got {qname!r}")
            if qname in taken:
                other = taken[qname]
                raise ValueError(f"query name {qname!r} is already synced with {type(other.obj).__name__}."
                                 f"{next(p for p, q in other.names.items() if q == qname)}; "
                                 "unsync that first or pick another name")
            if any(b.obj is obj and pname in b.names for b in self._bindings):
                raise ValueError(f"{type(obj).__name__}.{pname} is already synced with the URL; unsync it first")
        return names

    def _apply(self, binding: Binding, texts: Mapping[str, list[str] | None]) -> None:
        """Set ``binding``'s parameters from query values (None: the value it had when synced)."""
        obj, updates = binding.obj, {}
        for name, values in texts.items():
            qname = binding.names[name]
            try:
                value = binding.defaults[name] if not values else binding.codecs[name].decode(values)
                check_browser_value(obj, name, value)
            except (ValueError, TypeError) as exc:  # Refused and QueryValueError are ValueErrors
                shown = "&".join(f"{qname}={v}" for v in values or [])
                refuse(self._session, type(obj).__name__, name, shown, f"from the page's URL query: {exc}")
                continue
            if not _equal(getattr(obj, name), value):
                updates[name] = value
        if updates:
            obj.param.update(**updates)

    def _show(self) -> None:
        """Put the model in the Document (last root) and give it the current query."""
        document = self._session.document
        if document is None or self._session.destroyed:
            return
        if self._model is None:
            model = TextInput(name=MODEL_NAME, visible=False, value=_as_json(self.query))
            model.js_on_change("value", CustomJS(code=REPLACE_QUERY_JS))
            model.on_change("value", self._browser_changed)
            self._model = model
        if self._model.document is None:
            document.add_root(self._model)
        self._push()

    def _param_changed(self, *events: param.parameterized.Event) -> None:
        if not self._session.destroyed:
            self._session.call_soon(self._push)

    def _push(self) -> None:
        """Send the query the parameters make to the browser, if it shows another one."""
        model = self._model
        if model is None or model.document is None or self._session.destroyed:
            return
        value = _as_json(self.query)
        if model.value != value:
            self._pushing = True
            try:
                model.value = value
            finally:
                self._pushing = False

    def _browser_changed(self, attr: str, old: Any, new: Any) -> None:
        """The page's URL changed (back/forward): set the synced parameters from it."""
        if self._pushing:
            return
        try:
            data = json.loads(new)
        except (TypeError, ValueError):
            data = None
        if not isinstance(data, dict) or not all(
                isinstance(v, list) and all(isinstance(s, str) for s in v) for v in data.values()):
            refuse(self._session, "Location", "query", new, "expected a JSON object of query name -> list of strings")
            data = {}
        for binding in list(self._bindings):
            texts = {p: data[q] or None for p, q in binding.names.items() if q in data}
            self._apply(binding, texts)
        self._push()  # what was refused or normalized goes back, so the URL shows what the app holds

    def _session_destroyed(self, session: Session) -> None:
        for binding in self._bindings:
            binding.obj.param.unwatch(binding.watcher)
        self._bindings.clear()
        self._model = None


def _as_json(query: dict[str, list[str]]) -> str:
    # Compact, as the browser's JSON.stringify writes it, so an unchanged query compares equal.
    return json.dumps(query, separators=(",", ":"), ensure_ascii=False)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return a is b
