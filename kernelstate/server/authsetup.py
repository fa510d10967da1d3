"""The :class:`~kernelstate.auth.access.Auth` of a standalone server, from its options and environment.

A login is required when ``--basic-auth FILE`` is given or
``KERNELSTATE_BASIC_AUTH_PASSWORD`` is set; otherwise there is no Auth and
the server is open, as before. With a session store (``--session-store``), logins
are kept in it (:mod:`kernelstate.auth.shared_logins`), so every process sharing
the store and the secret key accepts a login and its logout; without one, in
this process's memory.
"""
from __future__ import annotations

import os
from functools import partial

from ..auth.access import Auth, load_authorize
from ..auth.basic import PasswordProvider
from ..auth.live import LiveLogins
from ..auth.logins import LoginStore
from ..auth.passwords import PASSWORD_ENV, Passwords
from ..auth.provider import LoginProvider
from ..auth.shared_logins import SharedLogins, WatchedLogins
from ..errors import ConfigError
from ..store.urls import open_store
from .options import ServeOptions


def build_auth(options: ServeOptions, key: bytes | None = None) -> Auth | None:
    """The server's Auth, or None when no login is configured; raises ConfigError for a bad setup.

    ``key`` is the server's signing key; with it and a session store, login records are kept in the store.
    """
    if options.basic_auth:
        if not os.path.isfile(options.basic_auth):
            # The value is not echoed: someone may have passed a password here.
            raise ConfigError("--basic-auth expects a FILE of USER:HASH lines, and the value given is not a file "
                              f"(not shown: it may be a password). For one shared password set {PASSWORD_ENV} in "
                              "the environment; never put a password on the command line")
        passwords: Passwords | None = Passwords.from_file(options.basic_auth)
    else:
        passwords = Passwords.from_env()
    if options.oauth is not None and passwords is not None:
        raise ConfigError(f"--oauth-provider {options.oauth.provider} and a password login (--basic-auth or "
                          f"{PASSWORD_ENV}) exclude each other: choose one")
    if passwords is None and options.oauth is None:
        if options.authorize is not None:
            raise ConfigError("--authorize needs a login to know who is asking: add --basic-auth FILE, --oauth-provider, or set "
                              f"{PASSWORD_ENV}")
        return None
    authorize = options.authorize
    if isinstance(authorize, str):
        authorize = load_authorize(authorize)
    elif authorize is not None and not callable(authorize):
        raise ConfigError(f"authorize must be 'MODULE:FUNCTION' or a function (user_info, path) -> bool; "
                          f"got {authorize!r}")
    logins = _login_records(options, key)
    if options.oauth is not None:
        provider: LoginProvider = options.oauth.login_provider(logins, options.prefix, options.auth_cookie_expiry_s)
    else:
        assert passwords is not None
        provider = PasswordProvider(passwords, logins, expiry_s=options.auth_cookie_expiry_s)
    return Auth(provider, logins, prefix=options.prefix, cookie_expiry_s=options.auth_cookie_expiry_s,
                authorize=authorize)


def _login_records(options: ServeOptions, key: bytes | None) -> LiveLogins:
    url = options.session_store_url
    if url and key is not None:
        return WatchedLogins(SharedLogins(partial(open_store, url), key, options.auth_cookie_expiry_s))
    return LiveLogins(LoginStore(options.auth_cookie_expiry_s))
