"""The pages of logging in and out: the login form, the sign-out confirmation, the 403 of a refused user,
the 503 while the login store is unreachable.

They use the app pages' stylesheet (``kernelstate.css``), served at
``{prefix}/ks-static/``, which stays open to visitors who are not signed in.
"""
from __future__ import annotations

from ..web.page import environment, render_message


def login_page(*, action: str, xsrf: str, next_url: str, root_url: str = "./", username: str = "",
               error: str | None = None, title: str = "Sign in") -> str:
    """The password login form (posts ``username``, ``password``, ``next`` and ``_xsrf`` to ``action``)."""
    return environment().get_template("login.html").render(
        title=title, heading=title, paragraphs=[], error=error, action=action, xsrf=xsrf,
        next_url=next_url, username=username, ks_static=root_url + "ks-static/")


def logout_page(*, user: str | None, action: str, xsrf: str, cancel: str, root_url: str = "./") -> str:
    """The sign-out confirmation (a POST form, so a link from elsewhere cannot sign anyone out)."""
    who = f"You are signed in as {user}." if user else "You are not signed in."
    return render_message("Sign out", "Sign out", [who], root_url,
                          form={"action": action, "fields": {"_xsrf": xsrf}, "button": "Sign out", "cancel": cancel})


def forbidden_page(*, user: str, path: str, logout_url: str, root_url: str = "./") -> str:
    """The 403 page of a signed-in user whom the authorize callback refused ``path``."""
    return render_message(
        "403 Forbidden", "You may not open this page",
        [f"You are signed in as {user}, and {user} may not open {path}.",
         "Ask the app's owner for access, or sign out and sign in as someone else."],
        root_url, links=[{"url": logout_url, "title": "Sign out", "description": f"end {user}'s login"}])


UNAVAILABLE_REASON = "Sign-in unavailable"


def unavailable_page(*, root_url: str = "./") -> str:
    """The 503 page while the store that keeps logins cannot be reached (a login cannot be checked)."""
    return render_message(
        "503 Sign-in unavailable", "Sign-in is unavailable for a moment",
        ["The server cannot reach the store that keeps logins, so it cannot check who you are.",
         "Try again in a minute. The server's log names the store and the error."], root_url)
