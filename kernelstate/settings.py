"""``ks.config`` (this module is ``settings`` so it never shadows the ``ks.config`` object): process settings with a per-session override layer.

A setting written while a served session is active (its app code is running)
applies to that session only and is stored on the session. Written anywhere
else (a setup script, a notebook, module level of a library) it applies to the
whole process. Reads see the session's override first, then the process value.

Every option is declared once in ``OPTIONS`` with its default, a validator and
a one-line description; unknown names raise :class:`ConfigError` naming the
valid ones.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .context import served_session_or_none
from .errors import ConfigError

TEMPLATES = ("basic", "material", "bootstrap")


@dataclass(frozen=True)
class Option:
    default: Any
    validate: Callable[[Any], Any]
    doc: str


def _template(value: Any) -> str:
    if value not in TEMPLATES:
        raise ConfigError(f"template must be one of {', '.join(TEMPLATES)}; got {value!r}")
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


OPTIONS: dict[str, Option] = {
    "template": Option("basic", _template, "page template: 'basic', 'material' or 'bootstrap'"),
    "title": Option(None, _title, "default page title (the app's name when None)"),
    "session_key_func": Option(None, _key_func, "request -> hashable key for --reuse-sessions (default: the app path)"),
    "reuse_sessions": Option(False, _reuse, "serve a cached rendered page per key; 'verify' also diffs a fresh render"),
    "global_loading_spinner": Option(False, _bool("global_loading_spinner"), "overlay a spinner until the session has rendered"),
    "nthreads": Option(None, _optional_positive_int("nthreads"), "size of the thread pool for execute(schedule='thread'); None = min(32, cpus+4)"),
    "raw_css": Option((), _css, "extra CSS added to every page"),
    "cache_max_items": Option(1000, _positive_int("cache_max_items"), "bound of ks.state.cache entries made by as_cached"),
}


class Config:
    """The ``ks.config`` object. Attribute access is validated against OPTIONS."""

    def __init__(self) -> None:
        object.__setattr__(self, "_process", {name: opt.default for name, opt in OPTIONS.items()})

    def __getattr__(self, name: str) -> Any:
        if name not in OPTIONS:
            raise _unknown(name)
        session = served_session_or_none()
        if session is not None and name in session.config_overrides:
            return session.config_overrides[name]
        return self._process[name]

    def __setattr__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def set(self, name: str, value: Any, *, process: bool = False) -> None:
        """Set one option, for the building session or (``process=True``) for the process."""
        if name not in OPTIONS:
            raise _unknown(name)
        value = OPTIONS[name].validate(value)
        session = served_session_or_none()
        if session is not None and not process:
            session.config_overrides[name] = value
        else:
            self._process[name] = value

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
