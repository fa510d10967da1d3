"""The benchmark harness: a Bokeh-protocol load client, server processes,
scenarios and the Markdown report. ``bench/run.py`` is the command line."""
