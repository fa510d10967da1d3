"""How a component shows itself in a notebook: renderers found through a package entry point.

The core does not know its Jupyter renderer. A package that can render
components in a kernel declares it in its metadata::

    [project.entry-points."kernelstate.renderers"]
    jupyter = "kernelstate.jupyter.display:mimebundle"

and :func:`mimebundle` (what ``Component._repr_mimebundle_`` calls, so only
inside a notebook frontend) loads it on first use. Nothing is imported or
patched when ``kernelstate`` is imported, and cells go live without
``%load_ext``. Without a renderer a component shows as plain text.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)
GROUP = "kernelstate.renderers"
Renderer = Callable[[Any], tuple[dict[str, Any], dict[str, Any]]]


@lru_cache(maxsize=1)
def renderer() -> Renderer | None:
    """The installed renderer (the ``jupyter`` entry point first), or None."""
    found = sorted(entry_points(group=GROUP), key=lambda ep: (ep.name != "jupyter", ep.name))
    for ep in found:
        try:
            loaded: Renderer = ep.load()
            return loaded
        except Exception:  # a renderer whose dependencies are missing (no jupyter extra)
            log.debug("kernelstate renderer %s (%s) could not be loaded", ep.name, ep.value, exc_info=True)
    return None


def mimebundle(component: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rich display of ``component``: its renderer's, or plain text."""
    render = renderer()
    if render is None:
        return {"text/plain": repr(component)}, {}
    return render(component)
