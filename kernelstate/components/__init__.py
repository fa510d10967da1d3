"""Components: layouts, panes, widgets and indicators."""
