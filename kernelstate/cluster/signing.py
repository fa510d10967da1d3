"""Signed values: what one process writes to the shared store and another reads back.

A value crosses processes as ``MAC || kind || payload``: ``kind`` is ``j``
(the payload is UTF-8 JSON) or ``b`` (raw bytes), and ``MAC`` is
HMAC-SHA256 over a *purpose* (the cache key or the topic, so a value cannot be
replayed under another name), the kind and the payload, with the process's
secret key. Reading checks the MAC before anything is decoded and refuses a
mismatch with :class:`~kernelstate.cluster.errors.TamperedValueError`. Nothing is
ever unpickled: only JSON values and bytes can be shared.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from .errors import NotShareableError, TamperedValueError, ValueTooLargeError

__all__ = ["Codec"]

_MAC = hashlib.sha256().digest_size


class Codec:
    """Encodes, signs, checks and decodes shared values with one secret key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, body: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode("utf-8") + b"\0" + body, hashlib.sha256).digest()

    def dumps(self, purpose: str, value: Any, max_bytes: int) -> bytes:
        """The signed bytes of ``value`` (bytes, or a JSON value) for ``purpose``, at most ``max_bytes`` of payload."""
        if isinstance(value, (bytes, bytearray, memoryview)):
            body = b"b" + bytes(value)
        else:
            try:
                body = b"j" + json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise NotShareableError(
                    f"{purpose}: only JSON values (dict, list, str, number, bool, None) and bytes can be shared "
                    f"across processes; got {type(value).__name__} ({exc}). Convert it, e.g. df.to_json(), "
                    "or keep it process-wide with shared=False"
                ) from None
        if len(body) > max_bytes:
            raise ValueTooLargeError(
                f"{purpose}: the value is {len(body)} bytes, over the {max_bytes}-byte bound of shared values "
                "(ks.config.shared_value_max_bytes); share something smaller (a summary, a file path) or raise the bound"
            )
        return self._mac(purpose, body) + body

    def loads(self, purpose: str, blob: bytes) -> Any:
        """The value signed in ``blob`` for ``purpose``; raises TamperedValueError when the signature fails."""
        mac, body = blob[:_MAC], blob[_MAC:]
        if len(blob) <= _MAC or not hmac.compare_digest(mac, self._mac(purpose, body)):
            raise TamperedValueError(
                f"{purpose}: the shared value's signature does not match, so it was refused (written with another "
                "KERNELSTATE_SECRET_KEY, or modified in the store); give every process the same key"
            )
        kind, payload = body[:1], body[1:]
        if kind == b"b":
            return payload
        if kind == b"j":
            return json.loads(payload)
        raise TamperedValueError(f"{purpose}: the shared value has an unknown kind {kind!r}; it was refused")
