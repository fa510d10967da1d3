"""Read-recording views of a session's request, for the reuse cache.

``ks.state.session_args``, ``headers``, ``cookies``, ``user`` and
``request`` (also ``session.request``) hand app code these views; every read
adds ``(kind, name)`` to the session's ``request_reads``: ``("args", "city")``
for one query argument, ``("headers", None)`` for iterating all headers,
``("path", None)`` for the path, ``("user", None)``, and ``("request", None)``
for anything that cannot be told apart more finely (the URL, the remote
address, the whole record). Framework code that only looks reads
``session.request_info`` directly, which records nothing.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import RequestInfo

Reads = set[tuple[str, str | None]]


class RecordedMapping(Mapping[str, Any]):
    """A read-only view of a request mapping that records which keys were read."""

    def __init__(self, data: Mapping[str, Any], reads: Reads, kind: str) -> None:
        self._data = data
        self._reads = reads
        self._kind = kind

    def __getitem__(self, key: str) -> Any:
        self._reads.add((self._kind, key))
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        self._reads.add((self._kind, str(key)))
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        self._reads.add((self._kind, None))
        return iter(self._data)

    def __len__(self) -> int:
        self._reads.add((self._kind, None))
        return len(self._data)

    def __repr__(self) -> str:
        self._reads.add((self._kind, None))
        return repr(dict(self._data))


class RecordedRequest:
    """A read-only view of a :class:`~kernelstate.session.RequestInfo` that records what was read."""

    def __init__(self, info: RequestInfo, reads: Reads) -> None:
        self._info = info
        self._reads = reads

    @property
    def args(self) -> Mapping[str, list[bytes]]:
        return RecordedMapping(self._info.args, self._reads, "args")

    @property
    def headers(self) -> Mapping[str, str]:
        return RecordedMapping(self._info.headers, self._reads, "headers")

    @property
    def cookies(self) -> Mapping[str, str]:
        return RecordedMapping(self._info.cookies, self._reads, "cookies")

    @property
    def path(self) -> str:
        self._reads.add(("path", None))
        return self._info.path

    @property
    def user(self) -> str | None:
        self._reads.add(("user", None))
        return self._info.user

    @property
    def url(self) -> str:
        self._reads.add(("request", None))
        return self._info.url

    @property
    def remote_ip(self) -> str | None:
        self._reads.add(("request", None))
        return self._info.remote_ip

    def to_json(self) -> dict[str, Any]:
        self._reads.add(("request", None))
        return self._info.to_json()

    def __repr__(self) -> str:
        self._reads.add(("request", None))
        return repr(self._info)
