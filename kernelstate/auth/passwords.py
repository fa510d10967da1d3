"""Password checks for ``--basic-auth``: an owner-only file of argon2 hashes, or one shared password.

The file has one ``user:hash`` line per user (``#`` comments and blank lines
allowed); the hashes come from ``kernelstate hash-password``, which reads the
password from standard input. A file that its group or other users may read
or write is refused: anyone who can read it can try the hashes offline.
``KERNELSTATE_BASIC_AUTH_PASSWORD`` in the environment sets one password for
every user name instead. Passwords never come from the command line.
"""
from __future__ import annotations

import hmac
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import ConfigError

PASSWORD_ENV = "KERNELSTATE_BASIC_AUTH_PASSWORD"
MAX_NAME_LENGTH = 256
_hasher = PasswordHasher()
# Verified for unknown user names, so a guess at a name takes as long as a guess at a password.
_DUMMY_HASH = _hasher.hash("kernelstate: no such user")


class PasswordFileError(ConfigError):
    """The ``--basic-auth`` file cannot be used (missing, readable by others, malformed)."""


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` for a ``--basic-auth`` file line."""
    if not password:
        raise ValueError("refusing to hash an empty password")
    return _hasher.hash(password)


@dataclass(frozen=True)
class Passwords:
    """Who may log in with which password: per-user hashes, or one shared password."""

    hashes: dict[str, str] = field(default_factory=dict)
    shared: str | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Passwords:
        p = Path(path)
        try:
            mode = p.stat().st_mode
        except OSError as exc:
            raise PasswordFileError(f"--basic-auth {str(p)!r}: cannot read the password file: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PasswordFileError(
                f"--basic-auth {str(p)!r}: the password file is open to other users (mode {stat.filemode(mode)}, "
                f"{oct(mode & 0o777)}); make it owner-only with: chmod 600 {p}")
        hashes: dict[str, str] = {}
        for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, hashed = line.partition(":")
            name = name.strip()
            if not sep or not name or not hashed.strip().startswith("$argon2"):
                raise PasswordFileError(
                    f"--basic-auth {str(p)!r} line {number}: expected USER:HASH with an argon2 hash from "
                    f"`kernelstate hash-password`; got {line[:40]!r}")
            hashes[name] = hashed.strip()
        if not hashes:
            raise PasswordFileError(f"--basic-auth {str(p)!r}: no USER:HASH lines; add one per user "
                                    "(hashes from `kernelstate hash-password`)")
        return cls(hashes=hashes)

    @classmethod
    def from_env(cls) -> Passwords | None:
        """The shared password of ``KERNELSTATE_BASIC_AUTH_PASSWORD``, or None when it is unset."""
        shared = os.environ.get(PASSWORD_ENV)
        return cls(shared=shared) if shared else None

    def check(self, name: str, password: str) -> bool:
        """Whether ``password`` is right for ``name`` (slow on purpose: run it off the event loop)."""
        if not name or len(name) > MAX_NAME_LENGTH or not password:
            return False
        if self.shared is not None:
            return hmac.compare_digest(self.shared.encode("utf-8"), password.encode("utf-8"))
        hashed = self.hashes.get(name)
        try:
            return _hasher.verify(hashed or _DUMMY_HASH, password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False
