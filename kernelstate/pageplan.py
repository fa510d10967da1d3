"""A session's page before its Bokeh models exist.

Running an app gives its servables and its template's areas; a :class:`PagePlan`
is those components by area, in document order, and the page's title. The page
(:class:`~kernelstate.loading.PageSpec`) needs only that: BokehJS places a
session's roots by position, so the page names its roots by position too
(``root-0``, ``root-1``...). :meth:`PagePlan.populate` builds the models and adds
them to the session's Document as roots; it runs once.

The standalone host answers a page request from the plan and populates when a
browser connects: a page that is requested but never connects (a crawler, a
prefetch, a closed tab) costs no Bokeh models, and the first HTML does not wait
for them. Component values set in between are the models' initial values.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .errors import AppLoadError

if TYPE_CHECKING:
    from .loading import PageSpec
    from .session import Session

AREAS = ("header", "sidebar", "main")


class PagePlan:
    """The roots (components by area) and title of one session's page; :meth:`populate` makes the models."""

    def __init__(self, session: Session, default_title: str) -> None:
        from ._config import config
        from .loading import PageSpec
        from .template import template_class

        if session.destroyed:
            raise AppLoadError(f"session {session.id} was destroyed while building", path=default_title)
        areas: dict[str, list[Any]] = {a: [] for a in AREAS}
        for comp, area in session.servables:
            areas[area].append(comp)
        template = session.template   # None: the app never used ks.state.template (nothing in its areas)
        if template is not None:
            for area, comps in template.areas().items():
                areas[area].extend(comps)
        self.session = session
        self.default_title = default_title
        self.components: list[tuple[Any, str]] = [(c, a) for a in AREAS for c in areas[a]]
        title = (template.title if template is not None else None) or session.title or config.title or default_title
        if template is not None:
            template.title = title
        session.page_title = title   # a template made later starts with it (kernelstate.template.session_template)
        template_name = template.template_name if template is not None else template_class(config.template).template_name
        self.spec: PageSpec = PageSpec(title, template_name,
                                       [(f"root-{i}", area) for i, (_, area) in enumerate(self.components)],
                                       list(config.raw_css))
        self.populated = False

    def populate(self) -> PageSpec:
        """Build the roots' models into the session's Document (once); the page with their model ids.

        The session must be active (:func:`kernelstate.context.activate`).
        """
        from .components.base import as_component

        if self.populated:
            return self.spec
        doc = self.session.document
        if doc is None:
            raise AppLoadError(f"session {self.session.id} was destroyed before its page was built",
                               path=self.default_title)
        self.populated = True
        doc.title = self.spec.title
        roots: list[tuple[str, str]] = []
        for comp, area in self.components:
            model = as_component(comp).get_model(doc, self.session)
            doc.add_root(model)
            roots.append((model.id, area))
        # A location model goes after the page's roots, which BokehJS places by position.
        self.session.location.page_built()
        self.spec = replace(self.spec, roots=roots)
        return self.spec
