"""Signed session ids and page tokens.

Ids and tokens are signed (HMAC-SHA256) by default with a per-process random
key, or ``KERNELSTATE_SECRET_KEY`` so several processes can share one. The
token carries only the session id and its expiry: request values stay on
the server, so nothing secret (HttpOnly cookies, auth headers) ever reaches
the page. The signature is checked before anything in the token is decoded.

Behind a login, a token is bound to the user it was issued to: it carries a
digest of the user name, and :meth:`Signer.verify` refuses it for anyone else
(a page's token is useless with another user's cookie).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from ..errors import KernelstateError


class TokenError(KernelstateError):
    """The token is invalid; ``reason`` is safe to show."""

    def __init__(self, reason: str, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison that refuses (never raises on) a non-ASCII forgery.

    ``hmac.compare_digest`` raises TypeError for a str with non-ASCII characters;
    header values reach us latin-1 decoded, so a forged token can carry them.
    """
    return given.isascii() and hmac.compare_digest(expected, given)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Signer:
    key: bytes

    @classmethod
    def create(cls, secret: str | None) -> Signer:
        return cls(secret.encode("utf-8") if secret else secrets.token_bytes(32))

    def _sig(self, text: str) -> str:
        return _b64(hmac.new(self.key, text.encode("utf-8"), hashlib.sha256).digest())

    def new_session_id(self) -> str:
        raw = secrets.token_urlsafe(32)
        return f"{raw}.{self._sig(raw)}"

    def check_session_id(self, session_id: str) -> bool:
        raw, sep, sig = session_id.partition(".")
        return bool(sep) and _same(self._sig(raw), sig)

    def user_tag(self, user: str) -> str:
        """What a token carries of its user: a keyed digest, so the page does not spell out the name."""
        return self._sig("user:" + user)[:22]

    def token(self, session_id: str, expiration_s: float, user: str | None = None,
              claims: dict[str, Any] | None = None) -> str:
        """A token for ``session_id`` (bound to ``user`` when given); ``claims`` (not secret: signed, not
        encrypted) ride along."""
        # Same layout as Bokeh's tokens (expiry in UNIX seconds), so bokeh.client can connect too.
        payload: dict[str, Any] = {**(claims or {}), "session_id": session_id,
                                   "session_expiry": time.time() + expiration_s}
        if user is not None:
            payload["ks_user"] = self.user_tag(user)
        body = _b64(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
        return f"{body}.{self._sig(body)}"

    def session_id_of(self, token: str, max_len: int = 4096) -> str | None:
        """The session id of a genuine token, whoever it was issued to and expired or not (for log lines)."""
        body, sep, sig = token.partition(".")
        if len(token) > max_len or not sep or not _same(self._sig(body), sig):
            return None
        try:
            session_id = json.loads(_unb64(body)).get("session_id")
        except (ValueError, TypeError, AttributeError, binascii.Error):
            return None
        return session_id if isinstance(session_id, str) else None

    def verify(self, token: str, max_len: int = 4096, user: str | None = None) -> tuple[str, bool]:
        """Return ``(session_id, expired)`` or raise TokenError.

        The token's own signature is checked before its payload is decoded,
        and the session id inside must carry a valid signature too. A token
        issued to a user verifies only for that ``user``, one issued to nobody
        only for nobody.
        """
        session_id, expired, _ = self.verify_claims(token, max_len, user)
        return session_id, expired

    def verify_claims(self, token: str, max_len: int = 4096,
                      user: str | None = None) -> tuple[str, bool, dict[str, Any]]:
        """:meth:`verify`, plus the whole verified payload (the claims given to :meth:`token`)."""
        if not token or len(token) > max_len:
            raise TokenError("missing or oversized token")
        body, sep, sig = token.partition(".")
        if not sep or not _same(self._sig(body), sig):
            raise TokenError("invalid token signature")
        try:
            payload = json.loads(_unb64(body))
            session_id = payload["session_id"]
            expiry = payload["session_expiry"]
            bound = payload.get("ks_user")
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise TokenError("malformed token payload") from None
        if not isinstance(session_id, str) or not self.check_session_id(session_id):
            raise TokenError("invalid session id signature")
        if bound != (self.user_tag(user) if user is not None else None):
            raise TokenError("token issued to another user")
        expired = not isinstance(expiry, (int, float)) or time.time() >= expiry
        return session_id, expired, payload
