"""``ks.state.saved``: a per-session dict of JSON values kept with the session's store record.

With a session store (``--session-store``), what an app puts here survives
its process: a session rebuilt elsewhere starts with the same contents
(before ``ks.state.on_session_restored`` callbacks run). Without a store it is
an ordinary per-session dict.

Values must be JSON (str, int, float, bool, None, lists and dicts of them);
anything else is refused with TypeError when it is set. A change is seen when
a top-level key is set or deleted: after changing a nested value in place,
assign the key again (``saved["filters"] = filters``).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

__all__ = ["SavedState"]


class SavedState(MutableMapping[str, Any]):
    """A dict of JSON values that tells its listener (the session's store recorder) when it changes."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._listener: Callable[[], None] | None = None

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Framework use: ``listener()`` runs after every change."""
        self._listener = listener

    def _changed(self) -> None:
        if self._listener is not None:
            self._listener()

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ks.state.saved keys are strings; got {key!r}")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"ks.state.saved[{key!r}] must be JSON (str, number, bool, None, lists and dicts "
                            f"of them); got {type(value).__name__}: {exc}") from None
        self._data[key] = value
        self._changed()

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changed()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to_json(self) -> dict[str, Any]:
        """A copy of the contents (JSON round trip, so later in-place changes do not leak in)."""
        copied: dict[str, Any] = json.loads(json.dumps(self._data))
        return copied

    def restore(self, data: dict[str, Any]) -> None:
        """Framework use: replace the contents with a record's (the listener is told once)."""
        self._data = dict(data)
        self._changed()

    def __repr__(self) -> str:
        return f"SavedState({self._data!r})"
