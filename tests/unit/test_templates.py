"""Templates render title and roots with local assets only."""
from __future__ import annotations

import re

import pytest

from kernelstate.loading import PageSpec
from kernelstate.web.page import PageOptions, render_page


@pytest.mark.parametrize("name", ["basic", "material", "bootstrap"])
def test_template_renders_title_roots_and_no_external_urls(name: str) -> None:
    """Each template shows its title and a div per root; every asset URL is local."""
    spec = PageSpec(title="Weather <Paris>", template_name=name,
                    roots=[("p1", "header"), ("p2", "sidebar"), ("p3", "main")], raw_css=["body{}"])
    html = render_page(spec, "TOKEN", PageOptions(spinner=True))
    assert "<title>Weather &lt;Paris&gt;</title>" in html
    assert html.count('class="ks-root"') == 3
    assert f"ks-template-{name}" in html and f"css/{name}.css" in html
    assert 'id="ks-loading-spinner"' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "page references an external URL"
    assert "cdn" not in html.lower()


def test_templates_look_different() -> None:
    """The three templates differ in markup."""
    spec = PageSpec("T", "basic", [("p", "main")])
    pages = {n: render_page(PageSpec("T", n, spec.roots), "X", PageOptions()) for n in ("basic", "material", "bootstrap")}
    assert "mdc-top-app-bar" in pages["material"] and "navbar" in pages["bootstrap"]
    assert len(set(pages.values())) == 3
