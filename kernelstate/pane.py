"""``ks.pane``: Markdown, Str, HTML."""
from .components.pane import HTML, BokehModel, Markdown, Str
from .components.table import DataFrame

__all__ = ["HTML", "BokehModel", "DataFrame", "Markdown", "Str"]
