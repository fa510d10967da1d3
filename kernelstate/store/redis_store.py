"""The shared session store: a Redis server (``redis://host:port/db``) reached with the ``redis`` library.

Timeouts are short (a second) so an unreachable Redis shows up as
:class:`StoreUnavailableError` quickly instead of piling up work; the client
reconnects by itself once the server is back.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import StoreUnavailableError
from .urls import redacted

__all__ = ["RedisStore"]

TIMEOUT_S = 1.0


class RedisStore:
    """Records as Redis strings with an expiry."""

    def __init__(self, url: str) -> None:
        import redis

        self.description = redacted(url)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client: Any = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._errors as exc:
            raise StoreUnavailableError(f"session store {self.description}: {what} failed: "
                                        f"{type(exc).__name__}: {exc}") from exc

    def get(self, key: str) -> bytes | None:
        value = self._call("GET", self._client.get, key)
        return None if value is None else bytes(value)

    def put(self, key: str, value: bytes, ttl_s: float) -> None:
        self._call("SET", lambda: self._client.set(key, value, px=max(1, int(ttl_s * 1000))))

    def delete(self, key: str) -> None:
        self._call("DEL", self._client.delete, key)

    def touch(self, keys: Iterable[str], ttl_s: float) -> set[str]:
        keys = list(keys)
        if not keys:
            return set()

        def run() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.pexpire(key, max(1, int(ttl_s * 1000)))
            return list(pipe.execute())

        results = self._call("PEXPIRE", run)
        return {key for key, ok in zip(keys, results, strict=True) if not ok}

    def close(self) -> None:
        self._client.close()
