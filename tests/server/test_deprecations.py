"""Issue 14: no DeprecationWarning from kernelstate's own code (pyproject turns them into errors);
the reuse probe and the warm-up build tornado requests the supported way."""
from __future__ import annotations

import logging
import warnings
from typing import Any

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

import kernelstate as ks
from kernelstate.reuse import uncovered_reads


def test_reuse_probe_builds_requests_without_deprecated_arguments() -> None:
    request = HTTPServerRequest(start_line=RequestStartLine("GET", "/app?city=Lima", "HTTP/1.1"),
                                headers=HTTPHeaders({"Host": "example.org", "Cookie": "theme=dark", "X-A": "1"}))
    reads = {("args", "city"), ("cookies", "theme"), ("headers", "X-A"), ("path", None)}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        missing = uncovered_reads(reads, lambda r: r.path, request)
    assert missing == ["ks.state.session_args['city']", "ks.state.cookies['theme']", "ks.state.headers['X-A']"]


def test_warm_up_caches_pages_without_deprecation_errors(ks_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """--warm with --reuse-sessions: each app's page is cached at start, and nothing failed while warming."""
    with caplog.at_level(logging.INFO, "kernelstate.server.server"):
        server = ks_server({"one": lambda: ks.pane.Markdown("one"), "two": lambda: ks.pane.Markdown("two")},
                           reuse_sessions=True, warm=True)
    assert not [r for r in caplog.records if "failed" in r.getMessage()], [r.getMessage() for r in caplog.records]
    assert len(server.reuse) == 2
