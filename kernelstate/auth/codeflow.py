"""The OAuth 2 authorization code flow with PKCE (S256), state and nonce, for Tornado.

One flow, used by the OpenID Connect and GitHub providers:

1. ``{prefix}/oauth_login?next=URL`` makes a fresh ``state``, ``nonce`` and PKCE
   ``code_verifier``, keeps them in a short-lived signed cookie scoped to the
   callback path, and redirects to the provider's authorization endpoint with
   the S256 ``code_challenge``;
2. ``{prefix}/oauth_callback?code=..&state=..`` checks the state against that
   cookie (and that it was not used before in this process), clears the cookie,
   exchanges the code with the ``code_verifier`` at the token endpoint, lets
   the provider name the user (:meth:`CodeFlow.identify`) and issues a login.

The provider's secrets stay on the server: the browser sees only the
authorization URL, the state and the login cookie. Token requests go through
Authlib's ``AsyncOAuth2Client`` (httpx).
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.common.errors import AuthlibBaseError  # type: ignore[import-untyped]
from authlib.integrations.httpx_client import AsyncOAuth2Client  # type: ignore[import-untyped]
from tornado import web

from ..errors import KernelstateError
from ..loops import SingleFlight
from ..store.base import StoreUnavailableError
from ..web.page import render_message
from . import DEFAULT_COOKIE_EXPIRY_S
from .access import safe_next
from .identity import User
from .logins import Login, LoginRecords, set_login_cookie
from .logout import LogoutHandler
from .pages import UNAVAILABLE_REASON
from .provider import Route

log = logging.getLogger(__name__)
FLOW_COOKIE = "ks-oauth-flow"
FLOW_MAX_AGE_S = 600           # a login started more than 10 minutes ago must start again
USED_STATES_KEPT = 4096        # consumed states remembered per process (a replayed callback is refused)


class LoginFlowError(KernelstateError):
    """A login through the provider failed; ``message`` is safe to show, ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Client:
    """This server as the provider's OAuth client."""

    client_id: str
    client_secret: str
    scope: str
    redirect_uri: str | None = None   # default: {scheme}://{host}{prefix}/oauth_callback of the request


@dataclass(frozen=True)
class Endpoints:
    authorize: str
    token: str


@dataclass(frozen=True)
class PendingFlow:
    """What the callback needs of the login it completes (kept in the signed flow cookie)."""

    state: str
    nonce: str
    verifier: str
    next_url: str
    started: float

    def dumps(self) -> str:
        return json.dumps([self.state, self.nonce, self.verifier, self.next_url, self.started])

    @classmethod
    def loads(cls, text: str) -> PendingFlow:
        try:
            state, nonce, verifier, next_url, started = json.loads(text)
        except ValueError:
            raise LoginFlowError("This browser's login cookie is not one this server wrote: start the login "
                                 "again.") from None
        return cls(str(state), str(nonce), str(verifier), str(next_url), float(started))


def error_text(exc: BaseException) -> str:
    """An Authlib / httpx error as one line: what the provider answered."""
    if isinstance(exc, AuthlibBaseError):
        return f"{exc.error}: {exc.description}" if exc.description else str(exc.error)
    return f"{type(exc).__name__}: {exc}"


class CodeFlow:
    """The parts of a code-flow provider that differ: endpoints, extra parameters, naming the user."""

    name = "oauth"

    def __init__(self, client: Client, logins: LoginRecords, expiry_s: float = DEFAULT_COOKIE_EXPIRY_S) -> None:
        self.client = client
        self.logins = logins
        self.expiry_s = expiry_s
        self._used: OrderedDict[str, float] = OrderedDict()
        # A page and its WebSocket may find the token expired at once: one refresh per login, not two
        # (a provider that rotates refresh tokens would refuse the second).
        self._refreshing: SingleFlight[str, Login | None] = SingleFlight()

    # -- what a provider supplies ------------------------------------------------------
    async def endpoints(self) -> Endpoints:
        raise NotImplementedError

    def authorize_params(self, flow: PendingFlow) -> dict[str, str]:
        """Extra parameters of the authorization request (OIDC adds the nonce)."""
        return {}

    async def identify(self, tokens: dict[str, Any], flow: PendingFlow) -> User:
        """The user the token response stands for; raises LoginFlowError if it cannot be trusted."""
        raise NotImplementedError

    # -- the flow ----------------------------------------------------------------------
    def oauth_client(self, redirect_uri: str | None = None) -> Any:
        return AsyncOAuth2Client(client_id=self.client.client_id, client_secret=self.client.client_secret,
                                 scope=self.client.scope, redirect_uri=redirect_uri,
                                 code_challenge_method="S256", timeout=30.0)

    def redirect_uri(self, handler: web.RequestHandler, prefix: str) -> str:
        if self.client.redirect_uri:
            return self.client.redirect_uri
        request = handler.request
        return f"{request.protocol}://{request.host}{prefix}/oauth_callback"

    async def start(self, handler: web.RequestHandler, prefix: str, next_url: str) -> str:
        """The authorization URL for a new flow; the flow's cookie is set on ``handler``."""
        endpoints = await self.endpoints()
        flow = PendingFlow(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48),
                           next_url, time.time())
        async with self.oauth_client(self.redirect_uri(handler, prefix)) as client:
            url, _ = client.create_authorization_url(endpoints.authorize, state=flow.state,
                                                     code_verifier=flow.verifier, **self.authorize_params(flow))
        handler.set_signed_cookie(FLOW_COOKIE, flow.dumps(), expires_days=None, path=f"{prefix}/oauth_callback",
                                  httponly=True, samesite="Lax", secure=handler.request.protocol == "https",
                                  max_age=FLOW_MAX_AGE_S)
        return str(url)

    def pending(self, handler: web.RequestHandler, prefix: str) -> PendingFlow:
        """The flow this callback completes: its cookie, checked against ``state``; the cookie is cleared."""
        raw = handler.get_signed_cookie(FLOW_COOKIE, max_age_days=FLOW_MAX_AGE_S / 86400)
        handler.clear_cookie(FLOW_COOKIE, path=f"{prefix}/oauth_callback")
        if raw is None:
            raise LoginFlowError("No login is in progress in this browser (it took longer than "
                                 f"{FLOW_MAX_AGE_S // 60} minutes, or cookies are blocked): start the login again.")
        flow = PendingFlow.loads(raw.decode("utf-8"))
        state = handler.get_query_argument("state", "")
        if not state or not secrets.compare_digest(state.encode("utf-8", "replace"), flow.state.encode()):
            raise LoginFlowError("The login's state does not match the one this browser started with "
                                 "(a forged or mixed-up callback): start the login again.")
        if time.time() - flow.started > FLOW_MAX_AGE_S:
            raise LoginFlowError(f"The login took longer than {FLOW_MAX_AGE_S // 60} minutes: start it again.")
        if flow.state in self._used:
            raise LoginFlowError("This login callback was already used (a replayed callback): start the login again.")
        self._used[flow.state] = flow.started
        while len(self._used) > USED_STATES_KEPT:
            self._used.popitem(last=False)
        return flow

    async def exchange(self, handler: web.RequestHandler, prefix: str, flow: PendingFlow) -> dict[str, Any]:
        """The token response for the callback's code (sent with the flow's PKCE verifier)."""
        error = handler.get_query_argument("error", None)
        if error is not None:
            description = handler.get_query_argument("error_description", "")
            raise LoginFlowError(f"The provider refused the login: {error}" + (f" ({description})" if description else ""),
                                 403)
        code = handler.get_query_argument("code", "")
        if not code:
            raise LoginFlowError("The provider's callback has no code: start the login again.")
        endpoints = await self.endpoints()
        try:
            async with self.oauth_client(self.redirect_uri(handler, prefix)) as client:
                token = await client.fetch_token(endpoints.token, grant_type="authorization_code", code=code,
                                                 code_verifier=flow.verifier)
        except (AuthlibBaseError, httpx.HTTPError) as exc:
            log.warning("%s: token request for a login refused: %s", self.name, error_text(exc))
            raise LoginFlowError(f"The provider refused this login's code ({error_text(exc)}): start the login "
                                 "again.", 403) from None
        return dict(token)

    async def refresh_tokens(self, refresh_token: str) -> dict[str, Any] | None:
        """A new token response for ``refresh_token``, or None if the provider refuses it."""
        try:
            endpoints = await self.endpoints()
            async with self.oauth_client() as client:
                token = await client.refresh_token(endpoints.token, refresh_token=refresh_token)
        except (AuthlibBaseError, httpx.HTTPError, LoginFlowError) as exc:
            log.info("%s: refreshing an access token failed: %s", self.name, error_text(exc))
            return None
        return dict(token)

    # -- the LoginProvider protocol -----------------------------------------------------
    def handlers(self, prefix: str) -> list[Route]:
        p = re.escape(prefix)
        args: dict[str, Any] = {"flow": self, "prefix": prefix}
        logout = {"provider": self, "logins": self.logins, "prefix": prefix, "expiry_s": self.expiry_s}
        return [(rf"{p}/oauth_login", LoginStartHandler, args), (rf"{p}/oauth_callback", CallbackHandler, args),
                (rf"{p}/logout", LogoutHandler, logout)]

    def login_url(self, prefix: str, next_url: str) -> str:
        return f"{prefix}/oauth_login?" + urlencode({"next": next_url})

    async def refresh(self, login: Login) -> Login | None:
        """``login`` with a new access token from its refresh token; None once the provider refuses it."""
        return await self._refreshing.run(login.id, lambda: self._refresh(login))

    async def _refresh(self, login: Login) -> Login | None:
        if not login.refresh_token:
            return None
        tokens = await self.refresh_tokens(login.refresh_token)
        if tokens is None or not tokens.get("access_token"):
            return None
        user = await self.refreshed_user(login.user, tokens)
        if user is None:
            return None
        return login.with_user(user, refresh_token=str(tokens.get("refresh_token") or login.refresh_token),
                               access_expires_at=expires_at(tokens))

    async def refreshed_user(self, user: User, tokens: dict[str, Any]) -> User | None:
        """``user`` with the refreshed token response's access token (OIDC also checks a new ID token)."""
        return User(user.name, user.info, str(tokens["access_token"]))

    def logout_redirect(self, login: Login) -> str | None:
        return None


def expires_at(tokens: dict[str, Any]) -> float | None:
    """When the token response's access token expires (UNIX seconds), if it says."""
    if tokens.get("expires_at") is not None:
        return float(tokens["expires_at"])
    if tokens.get("expires_in") is not None:
        return time.time() + float(tokens["expires_in"])
    return None


class _FlowHandler(web.RequestHandler):
    flow: CodeFlow
    prefix: str

    def initialize(self, flow: CodeFlow, prefix: str) -> None:
        self.flow = flow
        self.prefix = prefix

    def refuse(self, exc: LoginFlowError) -> None:
        self.set_status(exc.status)
        self.set_header("Cache-Control", "no-store")
        again = {"url": self.flow.login_url(self.prefix, self.prefix + "/"), "title": "Log in again",
                 "description": f"through {self.flow.name}"}
        self.finish(render_message("Login failed", "The login did not complete", [exc.message],
                                   root_url=self.prefix + "/", links=[again]))


class LoginStartHandler(_FlowHandler):
    """``GET {prefix}/oauth_login?next=PATH``: off to the provider's authorization endpoint."""

    async def get(self) -> None:
        try:
            url = await self.flow.start(self, self.prefix, safe_next(self.get_query_argument("next", None), self.prefix))
        except LoginFlowError as exc:
            self.refuse(exc)
            return
        self.set_header("Cache-Control", "no-store")
        self.redirect(url)


class CallbackHandler(_FlowHandler):
    """``GET {prefix}/oauth_callback``: the provider sends the browser back here with a code."""

    async def get(self) -> None:
        started = time.monotonic()
        try:
            pending = self.flow.pending(self, self.prefix)
            tokens = await self.flow.exchange(self, self.prefix, pending)
            user = await self.flow.identify(tokens, pending)
        except LoginFlowError as exc:
            self.refuse(exc)
            return
        try:
            login = self.flow.logins.issue(user, refresh_token=tokens.get("refresh_token"),
                                           access_expires_at=expires_at(tokens))
        except StoreUnavailableError:   # logged once per outage by the login records
            raise web.HTTPError(503, reason=UNAVAILABLE_REASON) from None
        set_login_cookie(self, login)
        log.info("%s: %s logged in (code exchange and checks: %.0f ms)", self.flow.name, user.name,
                 1000 * (time.monotonic() - started))
        self.set_header("Cache-Control", "no-store")
        self.redirect(pending.next_url)
