"""``ks.pane``: Markdown, Str, HTML."""
from .components.pane import HTML, BokehModel, Markdown, Str

__all__ = ["HTML", "BokehModel", "Markdown", "Str"]
