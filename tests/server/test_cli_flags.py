"""Issue 14: ``--reuse-sessions`` is a switch that never swallows an APP path; the documented
``--reuse-sessions verify`` spelling still works."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kernelstate.cli import build_parser
from kernelstate.server.options import ServeOptions, normalize_argv
from kernelstate.testing import ProtocolClient

APP = str(Path(__file__).resolve().parent / "apps" / "counter.py")


def options(*argv: str) -> tuple[ServeOptions, list[str]]:
    ns = build_parser().parse_args(normalize_argv(["serve", *argv]))
    return ServeOptions.from_argv(ns), ns.apps


@pytest.mark.parametrize(("argv", "mode"), [
    (["--reuse-sessions", APP], True),
    ([APP, "--reuse-sessions"], True),
    (["--reuse-sessions", "verify", APP], "verify"),
    (["--reuse-sessions=verify", APP], "verify"),
    (["--reuse-sessions-verify", APP], "verify"),
    (["--reuse-sessions", "true", APP], True),
    ([APP], False),
])
def test_reuse_sessions_spellings(argv: list[str], mode: bool | str) -> None:
    opts, apps = options(*argv)
    assert opts.reuse_sessions == mode
    assert apps == [APP]


def test_bad_reuse_value_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    from kernelstate.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--reuse-sessions=always", APP])
    assert "--reuse-sessions takes no value or 'verify'; got 'always'" in capsys.readouterr().err


def test_serve_with_reuse_sessions_before_the_path(ks_serve_process: Any) -> None:
    """`kernelstate serve --reuse-sessions app.py` serves the app with reuse on."""
    proc = ks_serve_process("--reuse-sessions", APP)

    async def main() -> None:
        async with ProtocolClient(proc.url.rstrip("/") + "/counter") as tab:
            assert "Hello" in tab.text()

    asyncio.run(main())
