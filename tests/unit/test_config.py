"""ks.extension / ks.config: validation and per-session overrides."""
from __future__ import annotations

import pytest

import kernelstate as ks
from kernelstate.context import activate
from kernelstate.errors import ConfigError
from kernelstate.session import Session


def test_unknown_option_names_it_and_the_valid_ones() -> None:
    """An unknown ks.extension option raises an error naming it and listing valid options."""
    with pytest.raises(ConfigError) as err:
        ks.extension(templat="material")
    assert "'templat'" in str(err.value)
    assert "template" in str(err.value) and "session_key_func" in str(err.value)


def test_invalid_value_is_rejected_and_nothing_is_applied() -> None:
    """A bad value raises and leaves the other options untouched."""
    before = ks.config.template
    with pytest.raises(ConfigError, match="template must be one of"):
        ks.extension(global_loading_spinner=True, template="fancy")
    assert ks.config.template == before
    assert ks.config.global_loading_spinner is False


def test_session_override_does_not_leak_to_process() -> None:
    """Set while a session is being built, an option applies to that session only."""
    s = Session()
    with activate(s):
        ks.extension(template="material")
        assert ks.config.template == "material"
        assert ks.state.template.template_name == "material"
    assert ks.config.template == "basic"
    other = Session()
    with activate(other):
        assert ks.config.template == "basic"


def test_process_level_setting() -> None:
    """Outside a session, options apply to the process."""
    ks.config.raw_css = ["body { color: red; }"]
    try:
        assert ks.config.raw_css == ["body { color: red; }"]
    finally:
        ks.config.raw_css = []


def test_documented_options_exist() -> None:
    """The documented options are all accepted."""
    for name in ("template", "session_key_func", "reuse_sessions", "global_loading_spinner", "nthreads", "raw_css"):
        assert name in dir(ks.config)


def test_template_title_is_per_session() -> None:
    """ks.state.template.title sets only the current session's title."""
    a, b = Session(), Session()
    with activate(a):
        ks.state.template.title = "Alice's page"
    with activate(b):
        assert ks.state.template.title is None
