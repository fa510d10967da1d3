"""Page templates: ``basic`` (default), ``material`` and ``bootstrap``.

A template instance belongs to one session (``ks.state.template``); setting
``ks.state.template.title`` inside an app sets that session's page title.
Components appended to ``header``, ``sidebar`` or ``main`` are shown in that
area, after the ones marked ``.servable(area=...)``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import param

if TYPE_CHECKING:
    from ..session import Session

TEMPLATE_NAMES = ("basic", "material", "bootstrap")


class BaseTemplate(param.Parameterized):
    """Title, header, sidebar and main areas of a page."""

    title = param.String(default=None, allow_None=True, doc="Page title (tab and header).")
    header = param.List(default=[], doc="Components shown in the header bar.")
    sidebar = param.List(default=[], doc="Components shown in the sidebar.")
    main = param.List(default=[], doc="Components shown in the main area.")
    sidebar_width = param.Integer(default=300)

    template_name = "basic"

    def areas(self) -> dict[str, list[Any]]:
        return {"header": list(self.header), "sidebar": list(self.sidebar), "main": list(self.main)}


class BasicTemplate(BaseTemplate):
    """Plain page: a slim header bar, an optional sidebar, the main column."""

    template_name = "basic"


class MaterialTemplate(BaseTemplate):
    """Material-style: coloured app bar with elevation, cards on a grey background."""

    template_name = "material"


class BootstrapTemplate(BaseTemplate):
    """Bootstrap-style: dark navbar, bordered sidebar, container layout."""

    template_name = "bootstrap"


_CLASSES: dict[str, type[BaseTemplate]] = {cls.template_name: cls for cls in (BasicTemplate, MaterialTemplate,
                                                                               BootstrapTemplate)}
assert tuple(_CLASSES) == TEMPLATE_NAMES, "every template name has its class, in order"


def session_template(session: Session) -> BaseTemplate:
    """The template of ``session``, created on first use from ``ks.config.template`` as that session sees it."""
    if session.template is None:
        from .._config import config
        from ..context import activate

        with activate(session):
            created = create_template(config.template)
        if session.page_title is not None:   # made after its page was planned: the page's title
            created.title = session.page_title
        session.template = created
    template: BaseTemplate = session.template
    return template


def template_class(name: str) -> type[BaseTemplate]:
    """The template class called ``name`` (one of TEMPLATE_NAMES)."""
    try:
        return _CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; choose one of {', '.join(TEMPLATE_NAMES)}") from None


def create_template(name: str) -> BaseTemplate:
    return template_class(name)()


__all__ = ["BaseTemplate", "BasicTemplate", "BootstrapTemplate", "MaterialTemplate", "TEMPLATE_NAMES", "create_template", "session_template", "template_class"]
