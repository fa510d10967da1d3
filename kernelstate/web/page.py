"""HTML pages: a session's page from a PageSpec, and message/error/index pages.

Pages link BokehJS and kernelstate's CSS/JS from this server (no CDN). URLs
are relative to ``root_url`` so the same page works under a prefix and behind
a path-stripping proxy (jupyter-server-proxy).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from bokeh.resources import Resources
from bokeh.util.serialization import make_globally_unique_css_safe_id
from jinja2 import Environment, PackageLoader, select_autoescape

from ..loading import PageSpec

TOKEN_PLACEHOLDER = "__KERNELSTATE_TOKEN_PLACEHOLDER__"
BokehComponent = Literal["bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables", "bokeh-mathjax", "bokeh-api"]
BOKEH_COMPONENTS: list[BokehComponent] = ["bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables"]


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(loader=PackageLoader("kernelstate.template", "templates"),
                       autoescape=select_autoescape(["html"]))


@lru_cache(maxsize=16)
def _bokeh_urls(root_url: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    resources = Resources(mode="server", root_url=root_url, components=BOKEH_COMPONENTS)
    return tuple(resources.js_files), tuple(resources.css_files)


@dataclass(frozen=True)
class PageOptions:
    root_url: str = "./"            # where /static/ (BokehJS) and /ks-static/ are served
    spinner: bool = False
    app_path: str | None = None     # None: BokehJS derives the WebSocket URL from the page URL


def render_page(spec: PageSpec, token: str, options: PageOptions) -> str:
    """The page for one session (``token`` may be TOKEN_PLACEHOLDER for the reuse cache).

    The template is rendered once per distinct page (title, template, roots by
    position, CSS) and options; each session's page is that with its token in.
    """
    html = _rendered((spec.title, spec.template_name, tuple(spec.roots), tuple(spec.raw_css)), options)
    return html.replace(TOKEN_PLACEHOLDER, token)


@lru_cache(maxsize=128)
def _rendered(key: tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...]], options: PageOptions) -> str:
    title, template_name, roots, raw_css = key
    element_ids: dict[str, list[str]] = {"header": [], "sidebar": [], "main": []}
    roots_json: dict[str, str] = {}
    for root_id, area in roots:
        eid = make_globally_unique_css_safe_id()
        element_ids[area].append(eid)
        roots_json[root_id] = eid
    render_item = {"token": TOKEN_PLACEHOLDER, "roots": roots_json, "root_ids": [r for r, _ in roots],
                   "use_for_title": True}
    js_urls, css_urls = _bokeh_urls(options.root_url)
    return environment().get_template(f"{template_name}.html").render(
        title=title, template_name=template_name, roots=element_ids,
        js_urls=js_urls, css_urls=css_urls, raw_css=list(raw_css), spinner=options.spinner,
        ks_static=options.root_url + "ks-static/",
        render_items_json=_script_json([render_item]),
        app_path_json=_script_json(options.app_path), absolute_url_json="null",
    )


def render_message(title: str, heading: str, paragraphs: list[str], root_url: str = "./",
                   detail: str | None = None, links: list[dict[str, Any]] | None = None,
                   form: dict[str, Any] | None = None) -> str:
    """A plain page: an error, an index of apps, a notice, a confirmation.

    ``form`` (``action``, hidden ``fields``, ``button`` label, ``cancel`` URL) adds a POST form.
    Every value is HTML-escaped by the template.
    """
    return environment().get_template("message.html").render(
        title=title, heading=heading, paragraphs=paragraphs, detail=detail, links=links or [],
        ks_static=root_url + "ks-static/", form=form,
    )


def _script_json(value: Any) -> str:
    # Safe inside <script type="application/json">: no "</" sequences can close the tag.
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
