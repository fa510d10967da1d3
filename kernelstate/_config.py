"""``ks.config`` (this module is ``_config`` so it never shadows the ``ks.config`` object): process settings with a per-session override layer.

A setting written while a session is active (its app code or one of its
callbacks is running) applies to that session only and is stored on the
session. Written anywhere else (a setup script, a notebook cell, module level
of a library) it applies to the whole process. Reads see the session's
override first, then the process value.

Some options are **process-only**: they shape what happens before any app
code runs, or a resource the whole process shares (``reuse_sessions``,
``global_loading_spinner``, ``nthreads``, ``cache_max_items``). Setting one
inside a session changes nothing and logs a warning that says where to set it.

Every option is declared once in ``OPTIONS`` with its default, a validator, its
scope and a one-line description; unknown names raise :class:`ConfigError`
naming the valid ones.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .context import served_session_or_none
from .errors import ConfigError
from .template import TEMPLATE_NAMES

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger("kernelstate.config")



@dataclass(frozen=True)
class Option:
    default: Any
    validate: Callable[[Any], Any]
    doc: str
    process_only: bool = False
    applied: Callable[[Any], None] | None = None   # run after the process value is set


def _template(value: Any) -> str:
    if value not in TEMPLATE_NAMES:
        raise ConfigError(f"template must be one of {', '.join(TEMPLATE_NAMES)}; got {value!r}")
    return str(value)


def _key_func(value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigError(f"session_key_func must be a callable taking the request, or None; got {value!r}")
    return value


def _reuse(value: Any) -> bool | str:
    if value in (True, False):
        return bool(value)
    if value == "verify":
        return "verify"
    raise ConfigError(f"reuse_sessions must be True, False or 'verify'; got {value!r}")


def _bool(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be True or False; got {value!r}")
        return value
    return check


def _optional_positive_int(name: str) -> Callable[[Any], int | None]:
    def check(value: Any) -> int | None:
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{name} must be a non-negative int or None; got {value!r}")
        return value
    return check


def _positive_int(name: str) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive int; got {value!r}")
        return value
    return check


def _handler(value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigError(f"exception_handler must be a function taking the exception, or None; got {value!r}")
    return value


def _authorize(value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigError(f"authorize_callback must be a function (user_info, path) -> bool, or None; got {value!r}")
    return value


def _resize_pool(nthreads: Any) -> None:
    from .threads import thread_pool

    thread_pool.resize(nthreads if nthreads is not None else 0)


def _css(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"raw_css must be a string or a list of strings; got {value!r}")


def _title(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"title must be a string or None; got {value!r}")
    return value


def _store_url(value: Any) -> str | None:
    from .cluster.coordinator import check_url

    if value is not None and not isinstance(value, str):
        raise ConfigError(f"session_store must be a URL such as redis://host:6379/0, or None; got {value!r}")
    return None if value is None else check_url(value)


def _use_store(url: Any) -> None:
    from .cluster.coordinator import configure

    configure(url)


def _dask_address(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"dask_scheduler must be an address such as tcp://127.0.0.1:8786, or None; got {value!r}")
    return value
COMMS = ("auto", "relay", "anywidget")


def _comms(value: Any) -> str:
    if value not in COMMS:
        raise ConfigError(f"comms must be one of {', '.join(map(repr, COMMS))}; got {value!r}")
    if value == "anywidget":
        from importlib.util import find_spec

        if find_spec("anywidget") is None:
            raise ConfigError("comms='anywidget' needs the anywidget package, which is not installed: "
                              "pip install 'kernelstate[widgets]' (or use comms='relay')")
    return str(value)


OPTIONS: dict[str, Option] = {
    "template": Option("basic", _template, "page template: 'basic', 'material' or 'bootstrap'"),
    "title": Option(None, _title, "default page title (the app's name when None)"),
    "session_key_func": Option(None, _key_func, "request -> hashable key for --reuse-sessions (default: the app path)"),
    "reuse_sessions": Option(False, _reuse, "serve a cached rendered page per key; 'verify' also diffs a fresh render",
                             process_only=True),
    "global_loading_spinner": Option(False, _bool("global_loading_spinner"), "overlay a spinner until the session has rendered",
                                     process_only=True),
    "nthreads": Option(None, _optional_positive_int("nthreads"), "size of the process thread pool; None or 0 = min(32, cpus+4); setting it resizes the pool",
                       process_only=True, applied=_resize_pool),
    "raw_css": Option((), _css, "extra CSS added to every page"),
    "cache_max_items": Option(1000, _positive_int("cache_max_items"), "bound of ks.state.cache entries made by as_cached",
                              process_only=True),
    "comms": Option("auto", _comms, "how notebook cell outputs go live: 'auto' (the frontend picks the widget "
                    "comm or the relay), 'relay' (server extension only) or 'anywidget' (widget comm only)",
                    process_only=True),
    "exception_handler": Option(None, _handler, "called as handler(exception) after a callback's failure is logged, in the failing session"),
    # kernelstate.cluster: work across processes
    "session_store": Option(None, _store_url, "redis://host:port/db shared by every process, or sqlite:///PATH by this machine's "
                            "(tasks, publish, shared cache); "
                            "None: KERNELSTATE_SESSION_STORE, else this process alone", process_only=True, applied=_use_store),
    "shared_value_max_bytes": Option(1024 * 1024, _positive_int("shared_value_max_bytes"),
                                     "bound of a value shared through the store (as_cached(shared=True), publish)", process_only=True),
    "dask_scheduler": Option(None, _dask_address, "the Dask scheduler address for ks.state.execute(fn, schedule='dask')",
                             process_only=True),
    "authorize_callback": Option(None, _authorize, "called as fn(user_info, path) -> bool before a signed-in user's "
                                 "page or WebSocket (servers with a login); False answers 403", process_only=True),
}

_WHERE = ("set it for the process instead: a kernelstate serve flag or ks.serve keyword where there is one, "
          "ks.extension(...) in a --setup script or a notebook cell, or ks.config.set(name, value, process=True)")


class Config:
    """The ``ks.config`` object. Attribute access is validated against OPTIONS."""

    def __init__(self) -> None:
        object.__setattr__(self, "_process", {name: opt.default for name, opt in OPTIONS.items()})

    def __getattr__(self, name: str) -> Any:
        if name not in OPTIONS:
            raise _unknown(name)
        session = _session_scope()
        if session is not None and name in session.config_overrides:
            return session.config_overrides[name]
        return self._process[name]

    def __setattr__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def set(self, name: str, value: Any, *, process: bool = False) -> None:
        """Set one option, for the current session or (``process=True``, or outside a session) for the process.

        A process-only option set inside a session is ignored with a warning.
        """
        if name not in OPTIONS:
            raise _unknown(name)
        option = OPTIONS[name]
        value = option.validate(value)
        session = _session_scope()
        if session is not None and not process:
            if option.process_only:
                log.warning("ks.config.%s = %r was set inside session %s and has no effect: %s is a process-only "
                            "option; %s", name, value, session.id, name, _WHERE)
                return
            session.config_overrides[name] = value
            return
        self._process[name] = value
        if option.applied is not None:
            option.applied(value)

    def update(self, **options: Any) -> None:
        """Validate every option first, then set them all (nothing is set on error)."""
        for name, value in options.items():
            if name not in OPTIONS:
                raise _unknown(name)
            OPTIONS[name].validate(value)
        for name, value in options.items():
            self.set(name, value)

    def process_value(self, name: str) -> Any:
        """The process-wide value of an option, ignoring session overrides."""
        if name not in OPTIONS:
            raise _unknown(name)
        return self._process[name]

    def __dir__(self) -> list[str]:
        return sorted(OPTIONS)

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in OPTIONS)
        return f"Config({values})"


def _session_scope() -> Session | None:
    """The session a setting applies to: the active one, unless that is the process-wide kernel session."""
    session = served_session_or_none()
    if session is None or session.kind == "kernel":
        return None
    return session


def process_only_options() -> list[str]:
    """Names of the options that cannot be set per session."""
    return sorted(name for name, opt in OPTIONS.items() if opt.process_only)


def _unknown(name: str) -> ConfigError:
    return ConfigError(
        f"unknown kernelstate option {name!r}; valid options are: {', '.join(sorted(OPTIONS))}"
    )


config = Config()


def extension(*args: str, **options: Any) -> None:
    """Configure kernelstate: ``ks.extension(template="material", ...)``.

    Positional arguments are accepted for Panel compatibility (names of
    optional extensions) and must be empty here, as every asset kernelstate
    needs is always served. Options are validated before any is applied.

    Raises:
        ConfigError: an option name is unknown or its value is invalid.
    """
    if args:
        raise ConfigError(
            f"ks.extension() takes no positional extension names (got {args!r}); "
            f"pass options as keywords, one of: {', '.join(sorted(OPTIONS))}"
        )
    config.update(**options)
