"""Temperature converter"""
import kernelstate as ks

celsius = ks.widgets.IntSlider(name="Celsius", start=-20, end=40, value=20)
fahrenheit = ks.indicators.Number(name="Fahrenheit", value=68.0, format="{value:.1f} °F")
log = ks.pane.Markdown("Move the slider.")
button = ks.widgets.Button(name="Reset", button_type="primary")


def update(event):
    fahrenheit.value = event.new * 9 / 5 + 32
    log.object = f"Last change: **{event.old} → {event.new} °C**"


celsius.param.watch(update, "value")
button.on_click(lambda event: setattr(celsius, "value", 20))
ks.Column("# Converter", celsius, fahrenheit, button, log).servable(title="Temperature converter")
