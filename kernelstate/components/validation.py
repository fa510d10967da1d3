"""The one validation mechanism for values that come from a browser.

A browser tab can send any value for any property of any model in its
Document (BokehJS enforces ``disabled``, bounds and options; a hostile client
does not). Every component routes browser changes through this module, so an
app can trust its parameters:

- a value outside a widget's bounds or options, of the wrong type, or sent to
  a disabled widget is *refused*: the parameter keeps its value, no watcher
  runs, and the view that sent it is set back to the accepted value (the
  correction is a normal PATCH-DOC to that tab, so its view does not lie);
- a UI event (a click, a menu item) on a disabled widget is refused likewise;
- each refusal is counted on the session (``Session.refused_values``, keyed
  ``"<Component>.<parameter>"``) and logged as a warning the first time that
  key is refused in that session only, so a client cannot flood the log.

Components raise :class:`Refused` from their ``_from_model`` converters and
``_validate_browser`` checks; :func:`refuse` does the bookkeeping.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..session import Session

log = logging.getLogger(__name__)


class Refused(ValueError):
    """A browser value (or event) a component does not accept; the message says why."""


def refuse(session: Session | None, component: str, name: str, value: Any, reason: str) -> None:
    """Record that ``session`` sent ``value`` for ``component.name`` and it was refused.

    Logs a warning the first time per session and key; afterwards only counts.
    """
    key = f"{component}.{name}"
    if session is None:
        log.warning("refused browser value %.80r for %s: %s", value, key, reason)
        return
    seen = session.refused_values.get(key, 0)
    session.refused_values[key] = seen + 1
    if seen == 0:
        log.warning("refused browser value %.80r for %s: %s (session=%s; further refusals for %s in this "
                    "session are counted, not logged)", value, key, reason, session.id, key)
