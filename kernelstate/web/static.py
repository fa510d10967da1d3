"""Static files confined to their root: no traversal, no symlinks out, no NUL bytes."""
from __future__ import annotations

from tornado import web

from ..paths import is_within


class ConfinedStaticHandler(web.StaticFileHandler):
    """StaticFileHandler that also refuses symlinks pointing outside its root."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        if "\x00" in absolute_path:  # no file has one; os.path would raise ValueError (a 500)
            raise web.HTTPError(404, "NUL in a static path", reason="Not Found")
        if not is_within(root, absolute_path):  # the same confinement as app files, in every host
            raise web.HTTPError(403, "%s is not in the static root", self.path, reason="Forbidden")
        return super().validate_absolute_path(root, absolute_path)
