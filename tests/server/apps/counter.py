"""Counter app"""
import kernelstate as ks

slider = ks.widgets.IntSlider(name="value", start=0, end=100, value=0)
shown = ks.pane.Markdown("value is 0")
button = ks.widgets.Button(name="Add ten")
slider.param.watch(lambda e: setattr(shown, "object", f"value is {e.new}"), "value")
button.on_click(lambda e: setattr(slider, "value", slider.value + 10))
user = ks.state.session_args.get("user", [b"anonymous"])[0].decode()
ks.Column(f"# Hello {user}", slider, shown, button).servable(title="Counter")
