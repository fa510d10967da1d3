"""How much work one client protocol message may cause, checked before Bokeh decodes it.

The transport bounds a message's *bytes*; that is not enough. Bokeh turns
every ``{"type": "object", "name": ..., "id": ...}`` in a PATCH-DOC into a
new model (0.3-1 ms each, and some classes build a dozen sub-models by
default), resolves every ``{"id": ...}`` reference and validates every value,
all on the session's event loop, where no other session runs meanwhile: 1.5 MB
of ``Div`` definitions kept a process busy for 11 s or more and added 200 MB.

:class:`MessageLimits` bounds, per message:

- ``values``: JSON values in its text frames (header, metadata, content).
  Counted *before* ``json.loads`` from the structural characters (``,``, ``[``
  and ``{``, those inside strings too: a conservative count that never parses),
  so a huge flat array cannot cost a long parse either;
- ``depth``: nesting of objects and arrays in the PATCH-DOC content (the
  content object itself is depth 1);
- ``models``: new model definitions, each weighted by the models one bare
  instance of its class holds (a ``Div`` counts 1, a ``DatetimeAxis`` 18), so
  the bound is on models Bokeh would actually build;
- ``references``: ``{"id": ...}`` references to models.

A message over a limit closes its connection with
:data:`~kernelstate.endpoint.CloseCode.MESSAGE_TOO_COMPLEX` (4009) and one log line
naming the session; the session itself and every other connection go on.

The class weights are computed once per model class in this process (one bare
instance each, the same work decoding one definition costs) and cached; the
cache is process-wide and bounded by the number of Bokeh model classes. Every
function here runs on the thread that receives the message.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import ConfigError, ProtocolError

_STRUCTURAL = (",", "[", "{")


class MessageLimitError(ProtocolError):
    """A client message would cost more than :class:`MessageLimits` allows.

    Attributes:
        limit: the name of the limit (``values``, ``depth``, ``models``, ``references``).
        value: how far the message got when it crossed the limit.
        maximum: the configured limit.
    """

    def __init__(self, limit: str, value: int, maximum: int) -> None:
        super().__init__(f"message exceeds the {limit} limit ({value} > {maximum})")
        self.limit = limit
        self.value = value
        self.maximum = maximum


@dataclass(frozen=True)
class MessageLimits:
    """Per-message bounds on the work a client message may cause (see the module docstring).

    The defaults keep the worst accepted message (every limit reached at
    once) to about a tenth of a second of event-loop time (60-110 ms measured
    on a busy, shared 2-core host); ordinary messages are far below them. An
    app whose browsers really send more (a selection of more than ~10,000
    points, a client-side layout builder, a long pasted CSV) raises them with
    ``--message-limit NAME=N`` (``kernelstate serve``), ``message_limits=``
    (``ks.serve``) or ``c.KernelstateApp.message_limits`` (Jupyter).
    """

    values: int = 10_000
    depth: int = 32
    models: int = 16
    references: int = 500

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"message limit {f.name!r} must be an int >= 1; got {value!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> MessageLimits:
        """Build from ``{"models": 64, ...}``; unknown names get a clear error."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"message limits must be a mapping of name to int; got {values!r}"[:200])
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown message limit(s) {unknown}; known: {', '.join(sorted(names))}")
        return cls(**dict(values))

    @classmethod
    def parse(cls, items: Iterable[str]) -> MessageLimits:
        """Build from CLI items like ``["models=64", "depth=40"]``."""
        values: dict[str, int] = {}
        for item in items:
            name, sep, number = str(item).partition("=")
            if not sep or not number.strip().isdigit():
                raise ConfigError(f"--message-limit expects NAME=N (e.g. models=64); got {item!r}")
            values[name.strip()] = int(number)
        return cls.from_mapping(values)

    @classmethod
    def coerce(cls, value: MessageLimits | Mapping[str, Any] | None) -> MessageLimits:
        if value is None:
            return cls()
        if isinstance(value, MessageLimits):
            return value
        if isinstance(value, Mapping):
            return cls.from_mapping(value)
        raise ConfigError(f"message_limits must be a MessageLimits or a dict; got {value!r}")

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def count_values(text: str | bytes) -> int:
    """An upper bound on the JSON values in ``text``, without parsing it (C-speed ``count``)."""
    if isinstance(text, bytes):
        return sum(text.count(c.encode()) for c in _STRUCTURAL) + 1
    return sum(text.count(c) for c in _STRUCTURAL) + 1


def check_patch(content: Any, limits: MessageLimits) -> None:
    """Raise :class:`MessageLimitError` if a parsed PATCH-DOC content is over ``limits``.

    Checks ``depth``, ``models`` and ``references`` (``values`` was bounded
    before parsing, by :func:`count_values`). Walks only the objects and
    arrays, iteratively (no recursion limit to hit), and stops at the first
    limit crossed.
    """
    models = references = 0
    stack: list[tuple[Any, int]] = [(content, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.depth:
            raise MessageLimitError("depth", depth, limits.depth)
        if isinstance(node, dict):
            if "id" in node:
                kind = node.get("type")
                if kind is None:
                    references += 1
                    if references > limits.references:
                        raise MessageLimitError("references", references, limits.references)
                elif kind == "object" and "name" in node:
                    models += model_weight(node["name"])
                    if models > limits.models:
                        raise MessageLimitError("models", models, limits.models)
            children: Iterable[Any] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        inner = depth + 1
        stack.extend([(child, inner) for child in children if isinstance(child, (dict, list))])


_weights: dict[str, int] = {}
_weights_lock = threading.Lock()


def model_weight(name: Any) -> int:
    """How many models decoding one definition of the Bokeh class ``name`` builds (>= 1).

    Bokeh decodes a definition as a bare instance whose default property
    values are built at once (a ``DatetimeAxis`` gets its ticker, its
    formatter and their sub-tickers): the number of models that instance
    holds is what the definition costs. Unknown names weigh 1 (Bokeh refuses
    them).
    """
    if not isinstance(name, str):
        return 1
    weight = _weights.get(name)
    if weight is not None:
        return weight
    from bokeh.core.has_props import HasProps
    from bokeh.model import Model

    cls = Model.model_class_reverse_map.get(name)
    if cls is None or not issubclass(cls, Model):
        return 1
    try:
        instance = cls.__new__(cls)
        if not getattr(instance, "_initialized", False):  # as Bokeh's Deserializer builds it
            HasProps.__init__(instance)
        weight = max(1, len(instance.references()))
    except Exception:
        weight = 1
    with _weights_lock:
        _weights[name] = weight
    return weight
