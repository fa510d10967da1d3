"""Logins for ``kernelstate serve``: who is signed in, and what they may see.

- :mod:`.identity`: the :class:`User` (name, claims, access token);
- :mod:`.logins`: login records kept on the server and the signed cookie naming one;
- :mod:`.provider`: the :class:`LoginProvider` protocol every way of logging in implements;
- :mod:`.access`: the :class:`Auth` a server holds (current user, authorize callback).
"""

DEFAULT_COOKIE_EXPIRY_S = 7 * 24 * 3600.0   # how long a login lasts unless --auth-cookie-expiry says otherwise
