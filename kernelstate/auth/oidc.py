"""``--oauth-provider generic``: any OpenID Connect provider, found by discovery from its issuer URL.

- Discovery: ``{issuer}/.well-known/openid-configuration``, whose ``issuer`` must be
  the configured one exactly (OpenID Connect Discovery 1.0, section 4.3);
- login: the authorization code flow of :mod:`.codeflow` (PKCE S256, state, nonce);
- the ID token is verified with joserfc against the provider's JWKS: signature
  (asymmetric algorithms only), ``iss``, ``aud`` (and ``azp``), ``exp``/``iat``
  and the flow's ``nonce``; the user's claims are the ID token's, completed by the
  userinfo endpoint where there is one;
- ``refresh`` trades the login's refresh token for a new access
  token (and checks a new ID token names the same user);
- logout goes on to the provider's ``end_session_endpoint`` where it has one.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .codeflow import Client, CodeFlow, Endpoints, LoginFlowError, PendingFlow
from .identity import User
from .logins import Login, LoginRecords

log = logging.getLogger(__name__)
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CLOCK_LEEWAY_S = 60
USER_CLAIMS = ("preferred_username", "email", "name", "sub")   # the first one present names the user


class DiscoveryError(LoginFlowError):
    """The issuer's discovery document is missing, malformed, or names another issuer."""


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorize: str
    token: str
    jwks_uri: str
    userinfo: str | None
    end_session: str | None
    algorithms: tuple[str, ...]


async def discover(issuer: str, timeout: float = 30.0) -> Metadata:
    """The provider metadata of ``issuer`` (checked to name the same issuer)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.get(url)
            response.raise_for_status()
            doc = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DiscoveryError(f"OpenID Connect discovery failed at {url}: {type(exc).__name__}: {exc}. Check "
                             "--oauth-issuer (the provider's issuer URL, without /.well-known/...)", 502) from None
    if not isinstance(doc, dict) or doc.get("issuer") != issuer:
        said = doc.get("issuer") if isinstance(doc, dict) else None
        raise DiscoveryError(f"The OpenID provider at {url} says its issuer is {said!r}, not {issuer!r}: set "
                             "--oauth-issuer to exactly the provider's issuer (a mismatch can mean another "
                             "provider answers at that address)", 502)
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not doc.get(k)]
    if missing:
        raise DiscoveryError(f"The discovery document at {url} lacks {', '.join(missing)}", 502)
    offered = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = tuple(a for a in offered if a in SIGNING_ALGORITHMS)
    if not algorithms:
        raise DiscoveryError(f"The provider at {issuer} signs ID tokens only with {offered!r}; kernelstate accepts "
                             f"{', '.join(SIGNING_ALGORITHMS)}", 502)
    return Metadata(issuer, doc["authorization_endpoint"], doc["token_endpoint"], doc["jwks_uri"],
                    doc.get("userinfo_endpoint"), doc.get("end_session_endpoint"), algorithms)


class OIDCProvider(CodeFlow):
    """A generic OpenID Connect provider (``--oauth-provider generic``)."""

    name = "generic"

    def __init__(self, issuer: str, client: Client, logins: LoginRecords, expiry_s: float) -> None:
        super().__init__(client, logins, expiry_s)
        self.issuer = issuer
        self._metadata: Metadata | None = None
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()

    async def metadata(self) -> Metadata:
        """Discovered once (again after a failure)."""
        async with self._lock:
            if self._metadata is None:
                self._metadata = await discover(self.issuer)
            return self._metadata

    async def endpoints(self) -> Endpoints:
        meta = await self.metadata()
        return Endpoints(meta.authorize, meta.token)

    def authorize_params(self, flow: PendingFlow) -> dict[str, str]:
        return {"nonce": flow.nonce}

    async def keys(self, refetch: bool = False) -> KeySet:
        if self._keys is None or refetch:
            meta = await self.metadata()
            async with httpx.AsyncClient(timeout=30.0) as http:
                response = await http.get(meta.jwks_uri)
                response.raise_for_status()
                self._keys = KeySet.import_key_set(response.json())
        return self._keys

    async def verify_id_token(self, id_token: str, nonce: str | None, subject: str | None = None) -> dict[str, Any]:
        """The ID token's claims, once its signature, issuer, audience, times and nonce are checked."""
        meta = await self.metadata()
        try:
            try:
                token = jwt.decode(id_token, await self.keys(), algorithms=list(meta.algorithms))
            except (JoseError, ValueError):
                # The provider may have rotated its keys since they were fetched: fetch once more.
                token = jwt.decode(id_token, await self.keys(refetch=True), algorithms=list(meta.algorithms))
            options: dict[str, Any] = {
                "iss": {"essential": True, "value": meta.issuer},
                "aud": {"essential": True, "value": self.client.client_id},
                "sub": {"essential": True, **({"value": subject} if subject else {})},
                "exp": {"essential": True}, "iat": {"essential": True},
            }
            if nonce is not None:
                options["nonce"] = {"essential": True, "value": nonce}
            jwt.JWTClaimsRegistry(leeway=CLOCK_LEEWAY_S, **options).validate(token.claims)
        except (JoseError, ValueError, httpx.HTTPError) as exc:
            log.warning("generic: ID token refused: %s: %s", type(exc).__name__, exc)
            raise LoginFlowError(f"The provider's ID token could not be verified ({type(exc).__name__}: {exc}): "
                                 "the login is refused. If this persists, check --oauth-issuer and "
                                 "--oauth-client-id.", 403) from None
        claims = dict(token.claims)
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client.client_id:
            raise LoginFlowError(f"The ID token is for several audiences {audiences!r} but not authorized for "
                                 f"this client (azp={claims.get('azp')!r}): the login is refused.", 403)
        return claims

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        meta = await self.metadata()
        if meta.userinfo is None:
            return {}
        try:
            async with httpx.AsyncClient(timeout=30.0) as http:
                response = await http.get(meta.userinfo, headers={"Authorization": f"Bearer {access_token}"})
                response.raise_for_status()
                info = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("generic: userinfo request failed: %s: %s", type(exc).__name__, exc)
            return {}
        return info if isinstance(info, dict) else {}

    async def identify(self, tokens: dict[str, Any], flow: PendingFlow) -> User:
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise LoginFlowError("The provider's token response has no ID token: is the 'openid' scope in "
                                 "--oauth-scope?", 403)
        claims = await self.verify_id_token(id_token, flow.nonce)
        extra = await self.userinfo(str(tokens["access_token"]))
        if extra.get("sub") not in (None, claims["sub"]):
            raise LoginFlowError("The provider's userinfo names another subject than its ID token: the login is "
                                 "refused.", 403)
        info = {**extra, **claims}
        name = next(str(info[c]) for c in USER_CLAIMS if info.get(c))
        return User(name=name, info=info, access_token=str(tokens["access_token"]))

    async def refreshed_user(self, user: User, tokens: dict[str, Any]) -> User | None:
        """``user`` with the new access token; a new ID token must name the same subject (its claims are taken)."""
        info = dict(user.info)
        id_token = tokens.get("id_token")
        if isinstance(id_token, str):
            try:
                info.update(await self.verify_id_token(id_token, None, subject=str(user.info.get("sub"))))
            except LoginFlowError:
                return None
        return User(user.name, info, str(tokens["access_token"]))

    def logout_redirect(self, login: Login) -> str | None:
        """The provider's end-session URL (OpenID Connect RP-initiated logout), if it has one."""
        meta = self._metadata
        if meta is None or meta.end_session is None:
            return None
        sep = "&" if "?" in meta.end_session else "?"
        return f"{meta.end_session}{sep}{urlencode({'client_id': self.client.client_id})}"
