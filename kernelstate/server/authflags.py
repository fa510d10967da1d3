"""The ``kernelstate serve`` flags of logins and TLS, and the refusal of secrets as flag values.

Secrets never come from the command line: any local user can read a
process's arguments (``ps``, ``/proc/PID/cmdline``). A flag that would carry
one (``--basic-auth-password``, ``--cookie-secret``, ...) is declared only to
be refused with a message naming the environment variable to use instead.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..auth import DEFAULT_COOKIE_EXPIRY_S

#: Flags that would carry a secret, and where that secret goes instead.
SECRET_FLAGS = {
    "--basic-auth-password": "KERNELSTATE_BASIC_AUTH_PASSWORD",
    "--password": "KERNELSTATE_BASIC_AUTH_PASSWORD",
    "--cookie-secret": "KERNELSTATE_SECRET_KEY",
    "--secret-key": "KERNELSTATE_SECRET_KEY",
}


class RefuseSecret(argparse.Action):
    """An argparse action that fails: this flag would put a secret in argv."""

    def __init__(self, option_strings: Sequence[str], dest: str, env: str = "", **kwargs: Any) -> None:
        self.env = env
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        parser.error(f"{option_string} is refused: a secret on the command line is readable by every local user "
                     f"(ps, /proc/PID/cmdline). Set {self.env} in the server's environment instead.")


def refuse_secret_flag(parser: argparse.ArgumentParser, flag: str, env: str) -> None:
    """Declare ``flag`` only to refuse it, pointing to the environment variable ``env``."""
    parser.add_argument(flag, action=RefuseSecret, env=env, dest=f"refused_{flag.strip('-').replace('-', '_')}")


def add_auth_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "logins and TLS", "Secrets never go on the command line: KERNELSTATE_BASIC_AUTH_PASSWORD (one shared "
        "password) and KERNELSTATE_SECRET_KEY (signs cookies and tokens; share it between processes) come from "
        "the environment.")
    a = g.add_argument
    a("--basic-auth", metavar="FILE", default=None,
      help="require a password login: FILE has one USER:HASH line per user, hashes from `kernelstate "
           "hash-password` (the file must be owner-only, chmod 600). Without FILE, KERNELSTATE_BASIC_AUTH_PASSWORD "
           "in the environment sets one password for any user name. Nothing but /liveness, the login page and its "
           "stylesheet is served before login")
    a("--auth-cookie-expiry", type=float, default=DEFAULT_COOKIE_EXPIRY_S, metavar="SECONDS",
      help=f"how long a login lasts (its cookie and its record on the server; default {DEFAULT_COOKIE_EXPIRY_S:.0f}, "
           "7 days); {prefix}/logout ends it at once, for every copy of the cookie")
    a("--authorize", metavar="MODULE:FUNCTION", default=None,
      help="who may see what: FUNCTION(user_info, path) -> bool is called before every page, WebSocket and "
           "reconnect of a signed-in user (MODULE is a module name or a .py file); False answers 403. Also "
           "ks.config.authorize_callback")
    a("--ssl-certfile", metavar="FILE", default=None, help="serve HTTPS with this certificate (PEM, with its chain); "
      "cookies are then Secure and pages use wss:// WebSockets")
    a("--ssl-keyfile", metavar="FILE", default=None, help="the private key of --ssl-certfile (PEM; keep it owner-only)")
    for flag, env in SECRET_FLAGS.items():
        refuse_secret_flag(parser, flag, env)


def auth_options(ns: argparse.Namespace) -> dict[str, Any]:
    """The ServeOptions fields of these flags."""
    return {"basic_auth": ns.basic_auth, "auth_cookie_expiry_s": ns.auth_cookie_expiry, "authorize": ns.authorize,
            "ssl_certfile": ns.ssl_certfile, "ssl_keyfile": ns.ssl_keyfile}
