"""``--oauth-provider jupyterhub``: kernelstate as a JupyterHub service, logging in the hub's users.

The hub starts the service (or it is registered as an external one) with the
``JUPYTERHUB_*`` environment: the API token, the OAuth client id, the service
prefix and callback URL. JupyterHub's own :class:`HubOAuth` reads them, and
the login is the hub's OAuth (with PKCE): a user logged in to the hub reaches
the app without another password, and the hub refuses a user who lacks the
service's access scope. The user is the hub's user model (``name``, ``groups``,
``admin``, ``scopes``...); the access token is the hub's token for this service.

Hub tokens come without a refresh token: every :data:`RECHECK_S` seconds
(``refresh``) the hub is asked again who the token belongs to, so a user the
hub removed, or a token it revoked, stops reaching the app. Logout ends the
kernelstate login, then goes on to the hub's logout (with the hub still signed
in, the next visit would log the user straight back in).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

from jupyterhub.services.auth import HubOAuth  # type: ignore[import-untyped]
from tornado import web
from tornado.httpclient import HTTPClientError

from ..errors import ConfigError
from .codeflow import Client, CodeFlow, Endpoints, LoginFlowError, PendingFlow
from .identity import User
from .logins import Login, LoginRecords

log = logging.getLogger(__name__)
RECHECK_S = 300.0
REQUIRED_ENV = ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_SERVICE_PREFIX", "JUPYTERHUB_API_URL")


class HubProvider(CodeFlow):
    """Login through the JupyterHub this server runs as a service of."""

    name = "jupyterhub"

    def __init__(self, logins: LoginRecords, prefix: str, expiry_s: float, hub_auth: Any = None) -> None:
        missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
        if hub_auth is None and missing:
            raise ConfigError(f"--oauth-provider jupyterhub needs the environment JupyterHub gives its services; "
                              f"{', '.join(missing)} missing. Run kernelstate as a JupyterHub service "
                              "(c.JupyterHub.services with a 'command', or an external service with its token)")
        self.hub_auth = hub_auth if hub_auth is not None else HubOAuth(cache_max_age=0)
        service_prefix = str(self.hub_auth.base_url).rstrip("/")
        if service_prefix != prefix:
            raise ConfigError(f"--prefix {prefix or '/'!r} is not the service's prefix {service_prefix!r} "
                              "(JUPYTERHUB_SERVICE_PREFIX): serve with --prefix " + service_prefix)
        super().__init__(Client(str(self.hub_auth.oauth_client_id), "", "",
                                redirect_uri=str(self.hub_auth.oauth_redirect_uri)), logins, expiry_s)

    async def endpoints(self) -> Endpoints:
        return Endpoints(str(self.hub_auth.oauth_authorization_url), str(self.hub_auth.oauth_token_url))

    async def exchange(self, handler: web.RequestHandler, prefix: str, flow: PendingFlow) -> dict[str, Any]:
        """The hub's token for the callback's code (``HubOAuth.token_for_code``, with the PKCE verifier)."""
        error = handler.get_query_argument("error", None)
        if error is not None:
            raise LoginFlowError(f"JupyterHub refused the login: {error} "
                                 f"({handler.get_query_argument('error_description', '')})", 403)
        code = handler.get_query_argument("code", "")
        if not code:
            raise LoginFlowError("JupyterHub's callback has no code: start the login again.")
        try:
            token = await self.hub_auth.token_for_code(code, code_verifier=flow.verifier, sync=False)
        except (HTTPClientError, web.HTTPError, OSError) as exc:
            log.warning("jupyterhub: token request for a login refused: %s", exc)
            raise LoginFlowError(f"JupyterHub refused this login's code ({exc}): start the login again.", 403) from None
        return {"access_token": str(token), "expires_in": RECHECK_S}

    async def hub_user(self, token: str) -> dict[str, Any] | None:
        """The hub's user model for ``token`` if it grants access to this service, else None."""
        try:
            model = await self.hub_auth.user_for_token(token, use_cache=False, sync=False)
        except (HTTPClientError, web.HTTPError, OSError) as exc:
            log.warning("jupyterhub: the hub did not answer who a token belongs to: %s", exc)
            return None
        if not model or not self.hub_auth.check_scopes(self.hub_auth.access_scopes, model):
            return None
        return dict(model)

    async def identify(self, tokens: dict[str, Any], flow: PendingFlow) -> User:
        token = str(tokens["access_token"])
        model = await self.hub_user(token)
        if model is None:
            raise LoginFlowError("JupyterHub does not grant this user access to the service (scope "
                                 f"{sorted(self.hub_auth.access_scopes)!r}): ask the hub's admin.", 403)
        return User(name=str(model["name"]), info=model, access_token=token)

    async def refresh(self, login: Login) -> Login | None:
        """The login, with the hub's current user model, while the hub still vouches for its token."""
        token = login.user.access_token
        model = await self.hub_user(token) if token else None
        if model is None:
            return None
        return login.with_user(User(login.user.name, model, token), access_expires_at=time.time() + RECHECK_S)

    def logout_redirect(self, login: Login) -> str | None:
        """The hub's logout page: else the hub, still signed in, would log the user straight back in."""
        return f"{self.hub_auth.hub_host}{self.hub_auth.hub_prefix}logout"
