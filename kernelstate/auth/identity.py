"""Who is signed in: the :class:`User` a login provider vouches for.

A ``User`` is what the rest of kernelstate sees of a login, whichever
provider made it (a password, OpenID Connect, JupyterHub): a name, the
provider's claims, and, for OAuth providers, the access token. The app reads
them as ``ks.state.user``, ``ks.state.user_info`` and ``ks.state.access_token``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class User:
    """A signed-in user.

    Attributes:
        name: the user name (``ks.state.user``).
        info: the provider's claims about the user (``ks.state.user_info``),
            at least ``{"name": name}`` for a password login.
        access_token: the OAuth access token (``ks.state.access_token``), or None.
    """

    name: str
    info: Mapping[str, Any] = field(default_factory=dict)
    access_token: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a user needs a non-empty name; got {self.name!r}")
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))

    def claims(self) -> dict[str, Any]:
        """The claims as a plain dict, with ``name`` filled in when the provider gave none."""
        return {"name": self.name, **self.info}
