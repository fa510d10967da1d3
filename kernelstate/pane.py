"""``ks.pane``: Markdown, Str, HTML, JSON, Alert, Image, Matplotlib, DataFrame, Bokeh, BokehModel."""
from .components.figures import Bokeh
from .components.pane import (
    HTML,
    JSON,
    Alert,
    BokehModel,
    Image,
    Markdown,
    Matplotlib,
    Str,
)
from .components.table import DataFrame

__all__ = ["HTML", "JSON", "Alert", "Bokeh", "BokehModel", "DataFrame", "Image", "Markdown", "Matplotlib", "Str"]
