"""The ``--oauth-*`` settings of ``kernelstate serve``: which provider, which client, where the secret is.

The client secret never comes from the command line (every local user can
read a process's argv): it is read from ``KERNELSTATE_OAUTH_CLIENT_SECRET`` or
from an owner-only file (``--oauth-client-secret-file``, mode 0600 or
stricter); ``--oauth-client-secret`` and ``--oauth-secret`` exist only to say so.
This module loads no web code: the CLI parses its flags before tornado is imported.
"""
from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError

if TYPE_CHECKING:
    from .logins import LoginRecords
    from .provider import LoginProvider

PROVIDERS = ("generic", "github", "jupyterhub")
SECRET_ENV = "KERNELSTATE_OAUTH_CLIENT_SECRET"
DEFAULT_SCOPES = {"generic": "openid profile email", "github": "", "jupyterhub": ""}
NO_SECRET_FLAGS = "secrets never come from the command line (any local user can read a process's arguments)"


@dataclass(frozen=True)
class OAuthOptions:
    """Login through an OAuth 2 / OpenID Connect provider (``ServeOptions.oauth``)."""

    provider: str
    issuer: str | None = None
    client_id: str | None = None
    client_secret_file: str | None = None
    scope: str | None = None            # None: the provider's default (DEFAULT_SCOPES)
    redirect_uri: str | None = None     # None: {scheme}://{host}{prefix}/oauth_callback of the login request
    authorize_url: str | None = None    # github: GitHub Enterprise Server, or a test provider
    token_url: str | None = None
    user_url: str | None = None

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ConfigError(f"--oauth-provider must be one of {', '.join(PROVIDERS)}; got {self.provider!r}")
        if self.provider == "generic" and not self.issuer:
            raise ConfigError("--oauth-provider generic needs --oauth-issuer URL (the OpenID provider's issuer, "
                              "e.g. https://login.example.org/realms/team)")
        if self.issuer and self.provider != "generic":
            raise ConfigError(f"--oauth-issuer is for --oauth-provider generic, not {self.provider}")
        if self.provider in ("generic", "github") and not self.client_id:
            raise ConfigError(f"--oauth-provider {self.provider} needs --oauth-client-id (the id of the OAuth "
                              "client registered for this app at the provider)")
        overrides = [n for n in ("authorize_url", "token_url", "user_url") if getattr(self, n)]
        if overrides and self.provider != "github":
            raise ConfigError(f"--oauth-{overrides[0].replace('_', '-')} is for --oauth-provider github only")
        for name in ("issuer", "authorize_url", "token_url", "user_url"):
            url = getattr(self, name)
            if url and not url.startswith("https://") and not os.environ.get("AUTHLIB_INSECURE_TRANSPORT"):
                raise ConfigError(f"--oauth-{name.replace('_', '-')} must be an https:// URL; got {url!r} (plain "
                                  "http is for tests on 127.0.0.1 only, with AUTHLIB_INSECURE_TRANSPORT=1)")
        if self.client_secret_file is not None:
            self.client_secret()   # fail at startup, not at the first login

    @classmethod
    def coerce(cls, value: Any) -> OAuthOptions | None:
        """An OAuthOptions from itself, a dict of its fields (``ks.serve(oauth={...})``), or None."""
        if value is None or isinstance(value, OAuthOptions):
            return value
        if isinstance(value, dict):
            names = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise ConfigError(f"unknown oauth option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
            return cls(**value)
        raise ConfigError(f"oauth must be an OAuthOptions, a dict of its fields, or None; got {value!r}")

    @property
    def scopes(self) -> str:
        return DEFAULT_SCOPES[self.provider] if self.scope is None else self.scope

    def client_secret(self) -> str:
        """The client secret: from the owner-only file, else ``KERNELSTATE_OAUTH_CLIENT_SECRET``."""
        if self.client_secret_file is not None:
            path = Path(self.client_secret_file)
            try:
                info = path.stat()
                text = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"--oauth-client-secret-file {str(path)!r} cannot be read: {exc.strerror}") from None
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(f"--oauth-client-secret-file {str(path)!r} is readable by others (mode "
                                  f"{stat.S_IMODE(info.st_mode):04o}): chmod 600 {path}")
            if hasattr(os, "getuid") and info.st_uid != os.getuid():
                raise ConfigError(f"--oauth-client-secret-file {str(path)!r} belongs to another user (uid "
                                  f"{info.st_uid}): it must be owned by the user running kernelstate")
            if not text:
                raise ConfigError(f"--oauth-client-secret-file {str(path)!r} is empty")
            return text
        secret = os.environ.get(SECRET_ENV, "")
        if not secret and self.provider != "jupyterhub":
            raise ConfigError(f"--oauth-provider {self.provider} needs the client secret: set {SECRET_ENV} or "
                              "give --oauth-client-secret-file PATH (a file only its owner can read)")
        return secret

    def login_provider(self, logins: LoginRecords, prefix: str, expiry_s: float) -> LoginProvider:
        """The provider these options describe, issuing its logins into ``logins``."""
        from .codeflow import Client

        if self.redirect_uri and urlsplit(self.redirect_uri).path != f"{prefix}/oauth_callback":
            raise ConfigError(f"--oauth-redirect-uri must end in the server's callback path {prefix}/oauth_callback "
                              f"(with --prefix {prefix or '/'}); got {self.redirect_uri!r}")
        if self.provider == "jupyterhub":
            from .hub import HubProvider

            return HubProvider(logins, prefix, expiry_s)
        client = Client(str(self.client_id), self.client_secret(), self.scopes, self.redirect_uri)
        if self.provider == "github":
            from .github import GitHubEndpoints, GitHubProvider

            defaults = GitHubEndpoints()
            urls = GitHubEndpoints(self.authorize_url or defaults.authorize, self.token_url or defaults.token,
                                   self.user_url or defaults.user)
            return GitHubProvider(client, logins, expiry_s, urls)
        from .oidc import OIDCProvider

        return OIDCProvider(str(self.issuer), client, logins, expiry_s)

    @classmethod
    def from_argv(cls, ns: argparse.Namespace) -> OAuthOptions | None:
        if ns.oauth_provider is None:
            given = [name for name in ("oauth_issuer", "oauth_client_id", "oauth_client_secret_file", "oauth_scope")
                     if getattr(ns, name) is not None]
            if given:
                raise ConfigError(f"--{given[0].replace('_', '-')} needs --oauth-provider generic, github or jupyterhub")
            return None
        return cls(provider=ns.oauth_provider, issuer=ns.oauth_issuer, client_id=ns.oauth_client_id,
                   client_secret_file=ns.oauth_client_secret_file, scope=ns.oauth_scope,
                   redirect_uri=ns.oauth_redirect_uri, authorize_url=ns.oauth_authorize_url,
                   token_url=ns.oauth_token_url, user_url=ns.oauth_user_url)


class _RefuseSecret(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | Sequence[Any] | None = None) -> None:
        parser.error(f"{option_string}: {NO_SECRET_FLAGS}. Put the client secret in {SECRET_ENV}, or in a file "
                     "only you can read (chmod 600) given with --oauth-client-secret-file PATH")


def add_oauth_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--oauth-*`` flags (read by :meth:`OAuthOptions.from_argv`)."""
    group = parser.add_argument_group("login with OAuth 2 / OpenID Connect")
    a = group.add_argument
    a("--oauth-provider", choices=PROVIDERS, default=None, help="require a login through this provider: generic "
      "(any OpenID Connect provider, with --oauth-issuer), github, or jupyterhub (when run as a JupyterHub service)")
    a("--oauth-issuer", metavar="URL", help="the OpenID Connect issuer; its /.well-known/openid-configuration is read")
    a("--oauth-client-id", metavar="ID", help="this app's client id at the provider")
    a("--oauth-client-secret-file", metavar="PATH", help=f"a file (mode 0600) holding the client secret; default: "
      f"the {SECRET_ENV} environment variable")
    a("--oauth-scope", metavar="SCOPES", help="space-separated scopes to request (default 'openid profile email' "
      "for generic, none for github: public profile only)")
    a("--oauth-redirect-uri", metavar="URL", help="the callback URL registered at the provider (default: "
      "{scheme}://{host}{prefix}/oauth_callback of the request; set it behind a proxy that rewrites the host)")
    a("--oauth-authorize-url", metavar="URL", help="github: the authorization endpoint (GitHub Enterprise Server)")
    a("--oauth-token-url", metavar="URL", help="github: the token endpoint (GitHub Enterprise Server)")
    a("--oauth-user-url", metavar="URL", help="github: the user API (GitHub Enterprise Server: https://HOST/api/v3/user)")
    for flag in ("--oauth-client-secret", "--oauth-secret"):
        group.add_argument(flag, action=_RefuseSecret, help=argparse.SUPPRESS)
