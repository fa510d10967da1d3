"""``ks.indicators``: Number."""
from .components.indicators import Number

__all__ = ["Number"]
