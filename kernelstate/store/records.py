"""Signed session records: JSON only, HMAC-SHA256 with a key derived from the secret key.

A record is ``<signature>.<json>``. The signature covers the JSON and is
checked before anything is parsed; the JSON names the session it belongs to,
so a record copied to another session's key is refused too. Nothing is ever
unpickled.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .base import TamperedRecordError

__all__ = ["FORMAT", "RecordSigner", "SessionRecord", "record_key"]

FORMAT = 1


def record_key(session_id: str) -> str:
    """The store key of a session's record (a hash: session ids are long and carry a signature)."""
    return "kernelstate:session:" + hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass
class SessionRecord:
    """What a session needs to be rebuilt elsewhere.

    ``values`` are ``[identity, property, json value]`` in document order
    (:mod:`kernelstate.store.tree`); ``args`` are the page's query arguments as
    latin-1 text (exactly the bytes tornado gave).
    """

    session_id: str
    route: str
    version: str
    path: str
    args: dict[str, list[str]]
    values: list[list[Any]] = field(default_factory=list)
    saved: dict[str, Any] = field(default_factory=dict)
    owner: str = ""  # which process instance wrote it last
    written: float = field(default_factory=time.time)
    format: int = FORMAT


class RecordSigner:
    """Signs and verifies records with a key derived from the server's secret key."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"kernelstate session store record", hashlib.sha256).digest()

    def _sig(self, body: bytes) -> bytes:
        return base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).rstrip(b"=")

    def encode(self, record: SessionRecord) -> bytes:
        body = json.dumps(asdict(record), separators=(",", ":"), allow_nan=False).encode("utf-8")
        return self._sig(body) + b"." + body

    def decode(self, data: bytes, session_id: str) -> SessionRecord:
        """The record in ``data``, for ``session_id``; raise TamperedRecordError if it is not ours."""
        sig, sep, body = data.partition(b".")
        if not sep or not hmac.compare_digest(self._sig(body), sig):
            raise TamperedRecordError(f"the stored record of session {session_id[:8]}... has a bad signature "
                                      "(changed in the store, or written with another KERNELSTATE_SECRET_KEY)")
        try:
            fields = json.loads(body)
            record = SessionRecord(**fields)
        except (ValueError, TypeError) as exc:
            raise TamperedRecordError(f"the stored record of session {session_id[:8]}... is malformed: {exc}") from exc
        if record.session_id != session_id or record.format != FORMAT:
            raise TamperedRecordError(f"the stored record at session {session_id[:8]}...'s key belongs to "
                                      "another session or format")
        return record
