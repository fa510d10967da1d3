"""``--oauth-provider github``: plain OAuth 2 with GitHub's endpoints; the user from GitHub's user API.

GitHub is not an OpenID Connect provider: there is no ID token, so the user
is whoever GitHub's ``/user`` API says the access token belongs to (``login``
names them; the whole answer is ``ks.state.user_info``). The flow is the one
of :mod:`.codeflow`, PKCE included (GitHub checks it since 2025). Tokens of a
GitHub App expire and come with a refresh token, which ``refresh`` uses;
a classic OAuth App's tokens do not expire. GitHub has no logout endpoint for
third-party apps: logout ends the kernelstate login only.

The endpoints can be pointed elsewhere (GitHub Enterprise Server, a test
provider): ``--oauth-authorize-url``, ``--oauth-token-url``, ``--oauth-user-url``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from .codeflow import Client, CodeFlow, Endpoints, LoginFlowError, PendingFlow
from .identity import User
from .logins import LoginRecords

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GitHubEndpoints:
    authorize: str = "https://github.com/login/oauth/authorize"
    token: str = "https://github.com/login/oauth/access_token"
    user: str = "https://api.github.com/user"


class GitHubProvider(CodeFlow):
    """Login with GitHub (``--oauth-provider github``)."""

    name = "github"

    def __init__(self, client: Client, logins: LoginRecords, expiry_s: float,
                 endpoints: GitHubEndpoints | None = None) -> None:
        super().__init__(client, logins, expiry_s)
        self.urls = endpoints or GitHubEndpoints()

    async def endpoints(self) -> Endpoints:
        return Endpoints(self.urls.authorize, self.urls.token)

    async def user_of(self, access_token: str) -> dict[str, Any]:
        """GitHub's ``/user`` answer for ``access_token``."""
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/vnd.github+json",
                   "User-Agent": "kernelstate"}
        try:
            async with httpx.AsyncClient(timeout=30.0) as http:
                response = await http.get(self.urls.user, headers=headers)
                response.raise_for_status()
                info = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("github: the user API at %s failed: %s: %s", self.urls.user, type(exc).__name__, exc)
            raise LoginFlowError(f"GitHub's user API ({self.urls.user}) did not answer for this login "
                                 f"({type(exc).__name__}): try again later.", 502) from None
        if not isinstance(info, dict) or not isinstance(info.get("login"), str) or not info["login"]:
            raise LoginFlowError(f"GitHub's user API ({self.urls.user}) named no user (no 'login' in its answer)", 502)
        return info

    async def identify(self, tokens: dict[str, Any], flow: PendingFlow) -> User:
        access_token = str(tokens["access_token"])
        info = await self.user_of(access_token)
        return User(name=info["login"], info=info, access_token=access_token)
