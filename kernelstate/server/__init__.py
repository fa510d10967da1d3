"""The standalone server: Tornado + the Bokeh protocol, one session per tab."""
