"""A Document's JSON for the PULL-DOC reply, with default property values dropped before they are read.

Bokeh's ``Document.to_json`` asks every model for the value of every property
(``HasProps.query_properties_with_values``) and only then drops the values that
were never set. Reading an unset property builds its default: a copy, validated
(``Property.themed_default`` and ``prepare_value``). About 30 properties per
model, so most of the time of a session's first document went into values that
are thrown away (Bokeh's own TODO in ``bokeh/core/has_props.py``: "this should
happen before get_value()").

:func:`document_json` makes the same JSON, byte for byte, and reads only the
values that end up in it: the set ones, and the unstable defaults no longer
holding their default container (Bokeh keeps the others' keys, see its comment
there, and drops them after reading). Everything else goes through Bokeh's own
code: the encoding of values, the references, the buffers.

Which properties are set is not in Bokeh's public API. It is read from the two
dictionaries Bokeh's own ``query_properties_with_values`` reads to decide
(``_property_values`` and ``_unstable_default_values``), read-only. A model for
which that is not safe takes Bokeh's path unchanged (:func:`_fast_keys` says
when): a themed one, one whose class serializes itself, one that would raise
(an unset required property), or a Bokeh that no longer has those
dictionaries. ``tests/unit/test_docjson.py`` checks the identity with
``Document.to_json`` for every component and the tutorials' documents.
"""
from __future__ import annotations

import functools
from typing import Any

from bokeh import __version__ as bokeh_version
from bokeh.core.has_props import HasProps, is_DataModel
from bokeh.core.property.descriptors import PropertyDescriptor
from bokeh.core.property.wrappers import PropertyValueContainer
from bokeh.core.serialization import AnyRep, ObjectRefRep, Serialized, Serializer
from bokeh.core.types import ID
from bokeh.document import Document
from bokeh.document.json import DocJson
from bokeh.model import Model
from bokeh.protocol.messages.pull_doc_reply import PullDoc, pull_doc_reply
from bokeh.settings import settings

__all__ = ["document_json", "document_json_inline", "pull_doc_reply_message"]


def pull_doc_reply_message(request_id: ID, doc: Document) -> pull_doc_reply:
    """The ``PULL-DOC-REPLY`` to ``request_id``: what ``pull_doc_reply.create`` makes, built with :func:`document_json`."""
    serialized = document_json(doc)
    msg = pull_doc_reply(pull_doc_reply.create_header(request_id=request_id), {}, PullDoc(doc=serialized.content))
    msg.add_buffers(*serialized.buffers)
    return msg


def document_json(doc: Document) -> Serialized[DocJson]:
    """``doc.to_json()`` (deferred buffers), without reading the defaults it drops."""
    serializer = _DefaultsFirstSerializer(deferred=True)
    return Serialized(_doc_json(doc, serializer), buffers=serializer.buffers)


def document_json_inline(doc: Document) -> DocJson:
    """``doc.to_json(deferred=False)`` (buffers inline as base64), without reading the defaults it drops."""
    return _doc_json(doc, _DefaultsFirstSerializer(deferred=False))


def _doc_json(doc: Document, serializer: Serializer) -> DocJson:
    data_models = _data_models()
    defs = serializer.encode(data_models)
    config = serializer.encode(doc.config)
    roots = serializer.encode(doc.roots)
    js_callbacks = doc.callbacks.js_event_callbacks
    callbacks = serializer.encode(js_callbacks)
    doc_json = DocJson(version=bokeh_version, title=doc.title, config=config, roots=roots)
    if data_models:
        doc_json["defs"] = defs
    if js_callbacks:
        doc_json["callbacks"] = callbacks
    doc.models.flush_synced()
    return doc_json


def _data_models() -> list[type[HasProps]]:
    """What ``Document.to_json`` lists as ``defs``; recomputed only when a model class was registered or removed."""
    known = Model.model_class_reverse_map
    return list(_data_models_of(tuple(known.values())))


@functools.lru_cache(maxsize=4)
def _data_models_of(classes: tuple[type[HasProps], ...]) -> tuple[type[HasProps], ...]:
    return tuple(cls for cls in classes if is_DataModel(cls))


class _DefaultsFirstSerializer(Serializer):
    """Bokeh's serializer, except that a model's unset properties with stable defaults are never read."""

    def __init__(self, *, deferred: bool = True) -> None:
        super().__init__(deferred=deferred)
        # Read once per document (Bokeh reads its settings from the environment on every call).
        self._include_defaults = bool(settings.serialize_include_defaults())

    def encode(self, obj: Any) -> AnyRep:
        if isinstance(obj, Model) and self.get_ref(obj) is None:
            keys = None if self._include_defaults else _fast_keys(obj)
            if keys is not None:
                return self._encode_model(obj, keys)
        return super().encode(obj)

    def _encode_model(self, obj: Model, keys: list[str]) -> ObjectRefRep:
        # Model.to_serializable, then HasProps.to_serializable, with the same order of references.
        self.add_ref(obj, obj.ref)
        rep = ObjectRefRep(type="object", name=obj.__qualified_model__, id=obj.id)
        attributes = {key: self.encode(value) for key, value in _values(obj, keys).items()}
        if attributes:
            rep["attributes"] = attributes
        return rep


def _fast_keys(obj: Model) -> list[str] | None:
    """The serialized properties Bokeh would keep for ``obj``, in its order; None: take Bokeh's own path.

    Bokeh keeps a property if it was set, or if its default is unstable (then
    it was resolved when the model was built and is kept in
    ``_unstable_default_values``), or if a theme gives it a value. Of the
    unstable ones it then drops those still holding their default container
    (a list, dict or set never assigned): for a plain descriptor that value is
    the one in ``_unstable_default_values``, so it is not read either.
    """
    cls = type(obj)
    set_values = getattr(obj, "_property_values", None)
    unstable = getattr(obj, "_unstable_default_values", None)
    if not isinstance(set_values, dict) or not isinstance(unstable, dict) or obj.themed_values():  # a document's default theme is {}
        return None
    position, required, plain, direct = _class_properties(cls)
    if not plain:
        return None
    if any(name not in set_values for name in required):
        return None  # Bokeh raises UnsetValueError here: let it
    # The few set or unstable properties, in the class's order (not a walk over all of its properties).
    keys = [name for name in set_values if name in position]
    keys.extend(name for name, value in unstable.items() if name not in set_values and name in position
                and not (name in direct and isinstance(value, PropertyValueContainer)))
    keys.sort(key=position.__getitem__)
    return keys


@functools.lru_cache(maxsize=1024)
def _class_properties(cls: type[HasProps]) -> tuple[dict[str, int], frozenset[str], bool, frozenset[str]]:
    """(each serialized property's position in Bokeh's order, those without a default, whether no class
    between it and Model overrides ``to_serializable``, those whose value is read as stored
    (plain descriptors: no dataspec, no alias)) of a model class."""
    names = tuple(name for name in cls.properties(_with_props=True) if cls.lookup(name).serialized)
    required = frozenset(name for name in names if _no_default(cls, name))
    mro = cls.__mro__
    plain = Model in mro and all("to_serializable" not in vars(k) for k in mro[:mro.index(Model)])
    direct = frozenset(name for name in names if type(cls.lookup(name)) is PropertyDescriptor)
    return {name: i for i, name in enumerate(names)}, required, plain, direct


def _no_default(cls: type[HasProps], name: str) -> bool:
    from bokeh.core.property.singletons import Undefined

    try:
        return cls.lookup(name).class_default(cls, no_eval=True) is Undefined
    except Exception:  # a default that cannot be built without an instance: treat as required, take Bokeh's path
        return True


def _values(obj: Model, keys: list[str]) -> dict[str, Any]:
    """``obj.properties_with_values(include_defaults=False)``, reading only ``keys``."""
    unstable: dict[str, Any] = obj._unstable_default_values
    result: dict[str, Any] = {}
    for key in keys:
        value = obj.lookup(key).get_value(obj)
        if isinstance(value, PropertyValueContainer) and key in unstable:
            continue  # an unstable default never changed: Bokeh drops it too
        result[key] = value
    return result
