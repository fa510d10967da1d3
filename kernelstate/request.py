"""The request a session was created for, and the one object through which app code reads it.

Invariant: a session's :class:`RequestInfo` has exactly one holder that app
code can reach, the session's :class:`RecordedRequest`, and every read through
it is recorded in :attr:`RecordedRequest.reads` as ``(kind, name)``:

- ``("args" | "headers" | "cookies", name)`` for one value, ``(kind, None)``
  when the whole mapping was iterated, counted or printed;
- ``("path", None)``, ``("url", None)``, ``("remote_ip", None)``, ``("user", None)``,
  ``("user_info", None)``, ``("access_token", None)``;
- ``("request", None)`` when the whole record was taken (:meth:`RecordedRequest.snapshot`).

The reuse cache (:mod:`kernelstate.reuse`) uses the reads to decide whether a
page rendered for one visitor may be shown to another. ``ks.state.request``,
``session_args``, ``headers``, ``cookies``, ``user`` and ``ks.state.session.request``
all lead here; nothing else in a session holds the request.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

Read = tuple[str, str | None]


@dataclass(frozen=True)
class RequestInfo:
    """What the app may know about the request that created its session.

    ``args`` follows tornado: ``dict[str, list[bytes]]``.
    """

    args: Mapping[str, list[bytes]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    path: str = ""
    url: str = ""
    user: str | None = None
    remote_ip: str | None = None
    user_info: Mapping[str, Any] = field(default_factory=dict)   # the login's claims
    access_token: str | None = None                             # an OAuth login's access token

    def to_json(self) -> dict[str, Any]:
        return {
            "args": {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in self.args.items()},
            "headers": dict(self.headers), "cookies": dict(self.cookies),
            "path": self.path, "url": self.url, "user": self.user, "remote_ip": self.remote_ip,
            "user_info": dict(self.user_info), "access_token": self.access_token,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequestInfo:
        return cls(
            args={k: [v.encode() for v in vs] for k, vs in data.get("args", {}).items()},
            headers=dict(data.get("headers", {})), cookies=dict(data.get("cookies", {})),
            path=data.get("path", ""), url=data.get("url", ""), user=data.get("user"),
            remote_ip=data.get("remote_ip"), user_info=dict(data.get("user_info") or {}),
            access_token=data.get("access_token"),
        )


class RecordedMapping(Mapping[str, Any]):
    """A read-only view of one request mapping that records which keys were read."""

    __slots__ = ("_data", "_reads", "_kind")

    def __init__(self, data: Mapping[str, Any], reads: set[Read], kind: str) -> None:
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
    """The session's request, read through properties that record what was read."""

    __slots__ = ("__info", "__reads", "__hooks")

    def __init__(self, info: RequestInfo | None = None) -> None:
        self.__info = info or RequestInfo()
        self.__reads: set[Read] = set()
        self.__hooks = 0

    def audit(self) -> RequestInfo:
        """The whole record, not recorded: only inside ``on_session_created``/``destroyed`` hooks.

        A hook that only looks (an audit log, metrics) reads the request here
        without making the page uncacheable. Anywhere else this raises, so app
        code cannot read the request past the reuse check.
        """
        if not self.__hooks:
            raise RuntimeError("request.audit() is for on_session_created/on_session_destroyed hooks; "
                               "app code reads ks.state.request (its reads decide whether a page may be reused)")
        return self.__info

    def hook_running(self, running: bool) -> None:
        """Framework use: a session hook starts (True) or ends (False)."""
        self.__hooks = max(0, self.__hooks + (1 if running else -1))

    @property
    def reads(self) -> frozenset[Read]:
        """What has been read so far (see the module docstring)."""
        return frozenset(self.__reads)

    @property
    def args(self) -> Mapping[str, list[bytes]]:
        """The query arguments (``name -> [bytes, ...]``, as tornado gives them)."""
        return RecordedMapping(self.__info.args, self.__reads, "args")

    @property
    def headers(self) -> Mapping[str, str]:
        """The request headers. Names are case-sensitive here, as sent (``User-Agent``)."""
        return RecordedMapping(self.__info.headers, self.__reads, "headers")

    @property
    def cookies(self) -> Mapping[str, str]:
        return RecordedMapping(self.__info.cookies, self.__reads, "cookies")

    @property
    def path(self) -> str:
        self.__reads.add(("path", None))
        return self.__info.path

    @property
    def url(self) -> str:
        self.__reads.add(("url", None))
        return self.__info.url

    @property
    def user(self) -> str | None:
        self.__reads.add(("user", None))
        return self.__info.user

    @property
    def user_info(self) -> Mapping[str, Any]:
        """The signed-in user's claims (a read-only view; empty without a login)."""
        self.__reads.add(("user_info", None))
        return MappingProxyType(dict(self.__info.user_info))

    @property
    def access_token(self) -> str | None:
        self.__reads.add(("access_token", None))
        return self.__info.access_token

    @property
    def remote_ip(self) -> str | None:
        self.__reads.add(("remote_ip", None))
        return self.__info.remote_ip

    def login_refreshed(self, user_info: Mapping[str, Any], access_token: str | None) -> bool:
        """Framework use: the session's login has new claims and access token; later reads return them.

        Called on the session's loop when the login is refreshed while the session lives
        (:mod:`kernelstate.auth.session_login`). Not a read; returns whether the access token changed.
        """
        changed = access_token != self.__info.access_token
        self.__info = replace(self.__info, user_info=dict(user_info), access_token=access_token)
        return changed

    def snapshot(self) -> RequestInfo:
        """The whole record (counts as depending on all of it)."""
        self.__reads.add(("request", None))
        return self.__info

    def __repr__(self) -> str:
        self.__reads.add(("request", None))
        return f"<RecordedRequest {self.__info!r}>"
