"""``ks.indicators``: Number, Progress."""
from .components.indicators import Number, Progress

__all__ = ["Number", "Progress"]
