"""``ks.pane``: Markdown, Str, HTML, JSON, Alert, Image, DataFrame, Bokeh, BokehModel."""
from .components.figures import Bokeh
from .components.pane import HTML, JSON, Alert, BokehModel, Image, Markdown, Str
from .components.table import DataFrame

__all__ = ["HTML", "JSON", "Alert", "Bokeh", "BokehModel", "DataFrame", "Image", "Markdown", "Str"]
