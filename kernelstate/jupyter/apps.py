"""Apps served from the Jupyter server: paths, kernelspecs, request data, the index.

Invariants:
- an app path is a relative path to a ``.py`` or ``.ipynb`` file under the
  server root; ``..``, absolute paths, hidden segments (unless the contents
  manager allows hidden files) and symlinks resolving outside the root are
  refused (:mod:`kernelstate.paths`, the rule ``kernelstate serve DIR`` and
  so the jupyter-server-proxy launcher apply too);
- what an app sees of the request (``ks.state.session_args``, ``headers``,
  ``cookies``) never includes Jupyter's own credentials: the ``token`` and
  ``_xsrf`` arguments, the ``Authorization``/``Cookie``/XSRF headers, and the
  login, XSRF and JupyterHub cookies are removed (other cookies are kept).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import KernelstateError
from ..loading import AppSpec
from ..paths import PathOutsideRootError, confined_path, is_within
from ..session import RequestInfo

APP_SUFFIXES = (".py", ".ipynb")
AUTH_ARGS = frozenset({"token", "_xsrf", "bokeh-session-id", "kernel"})
AUTH_HEADERS = frozenset({"authorization", "cookie", "x-xsrftoken", "x-csrftoken"})
AUTH_COOKIE_PREFIXES = ("username-", "jupyterhub-", "_xsrf")
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", ".ipynb_checkpoints"})


class AppPathError(KernelstateError):
    """An app path that may not be served; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class KernelApp(AppSpec):
    """A notebook or script under the server root, run per session in a kernel of its own."""

    def __init__(self, path: Path, api_path: str, kernel_name: str) -> None:
        super().__init__("/apps/" + api_path, _title(path))
        self.path = path
        self.api_path = api_path
        self.kernel_name = kernel_name

    @property
    def source_path(self) -> Path | None:
        return self.path


def _title(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ")


def resolve_app_path(root_dir: str, api_path: str, allow_hidden: bool = False) -> Path:
    """The file ``api_path`` names under ``root_dir``; raises AppPathError."""
    if not api_path or "\x00" in api_path or "\\" in api_path or api_path.startswith("/") or len(api_path) > 1024:
        raise AppPathError(404, "not an app path")
    parts = api_path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise AppPathError(404, "not an app path")
    if not allow_hidden and any(p.startswith(".") for p in parts):
        raise AppPathError(404, "hidden files are not served")
    if not api_path.endswith(APP_SUFFIXES):
        raise AppPathError(404, "only .py scripts and .ipynb notebooks are served as apps")
    try:
        real = confined_path(root_dir, *parts)
    except PathOutsideRootError:
        raise AppPathError(403, "the app path leaves the server root") from None
    if not real.is_file():
        raise AppPathError(404, "no such app")
    return real


def notebook_kernel_name(path: Path) -> str | None:
    """``metadata.kernelspec.name`` of a notebook (None for scripts and unreadable files)."""
    if path.suffix != ".ipynb":
        return None
    try:
        with path.open(encoding="utf-8") as f:
            name = json.load(f).get("metadata", {}).get("kernelspec", {}).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and name else None


def _is_auth_cookie(name: str, login_cookie: str | None) -> bool:
    return name == login_cookie or name.startswith(AUTH_COOKIE_PREFIXES)


def _without_auth_args(url: str) -> str:
    """``url`` without Jupyter's ``token``/``_xsrf`` query arguments (a Referer may carry ``?token=``)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in AUTH_ARGS]
    return urlunsplit(parts._replace(query=urlencode(query)))


def app_request_info(handler: Any) -> RequestInfo:
    """What an app may know about a page request to the Jupyter server (no credentials)."""
    request = handler.request
    login_cookie = None
    provider = getattr(handler, "identity_provider", None)
    if provider is not None and hasattr(provider, "get_cookie_name"):
        login_cookie = provider.get_cookie_name(handler)
    cookies = {name: m.value for name, m in request.cookies.items() if not _is_auth_cookie(name, login_cookie)}
    headers = {k: _without_auth_args(v) if k.lower() == "referer" else v
               for k, v in request.headers.get_all() if k.lower() not in AUTH_HEADERS}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    args = {k: list(v) for k, v in request.query_arguments.items() if k not in AUTH_ARGS}
    query = urlencode([(k, v.decode("utf-8", "replace")) for k, vs in args.items() for v in vs])
    url = f"{request.protocol}://{request.host}{request.path}" + (f"?{query}" if query else "")
    user = getattr(handler.current_user, "username", None)
    return RequestInfo(args=args, headers=headers, cookies=cookies, path=request.path, url=url,
                       user=user, remote_ip=request.remote_ip, user_info=jupyter_user_info(handler.current_user))


def jupyter_user_info(user: Any) -> dict[str, Any]:
    """``ks.state.user_info`` in Jupyter: the identity's fields (``username``, ``name``, ``display_name``, ...)."""
    if user is None:
        return {}
    if dataclasses.is_dataclass(user) and not isinstance(user, type):
        info = dataclasses.asdict(user)
    else:
        info = {"username": getattr(user, "username", None) or str(user)}
    return {k: v for k, v in info.items() if isinstance(v, (str, int, float, bool)) or v is None}


@dataclass(frozen=True)
class ListedApp:
    api_path: str
    title: str


def _is_app_text(text: str) -> bool:
    return "kernelstate" in text and "servable" in text


def is_app_file(path: str, max_bytes: int = 2_000_000) -> bool:
    """Whether ``path`` is a kernelstate app (what the index lists): it uses kernelstate and marks
    something ``.servable()``. Blocking: run it in a thread."""
    try:
        if os.path.getsize(path) > max_bytes:
            return False
        with open(path, encoding="utf-8", errors="replace") as f:
            return _is_app_text(f.read())
    except OSError:
        return False


def list_apps(root_dir: str, max_depth: int = 4, max_files: int = 2000, max_bytes: int = 2_000_000) -> list[ListedApp]:
    """Notebooks and scripts under the root that mark something ``.servable()`` with kernelstate.

    Modules of Python packages (directories with ``__init__.py``), test files
    and hidden paths are skipped. Blocking: run it in a thread.
    """
    root = os.path.realpath(root_dir)
    found: list[ListedApp] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        depth = os.path.relpath(dirpath, root).count(os.sep) + (dirpath != root)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_DIRS and depth < max_depth
                             and is_within(root, os.path.join(dirpath, d)))
        if "__init__.py" in filenames:
            continue
        for name in sorted(filenames):
            if name.startswith((".", "_", "test_")) or name == "conftest.py" or not name.endswith(APP_SUFFIXES):
                continue
            seen += 1
            if seen > max_files:
                return found
            path = os.path.join(dirpath, name)
            try:
                if os.path.getsize(path) > max_bytes or not is_within(root, path):
                    continue
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            if _is_app_text(text):
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                found.append(ListedApp(rel, _title(Path(name))))
    return found
