"""``ks.widgets``: Button, IntSlider, FloatSlider, TextInput, Select, Toggle."""
from .components.widgets import Button, FloatSlider, IntSlider, Select, TextInput, Toggle, Widget

__all__ = ["Button", "FloatSlider", "IntSlider", "Select", "TextInput", "Toggle", "Widget"]
