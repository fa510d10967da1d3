"""Weather by city (reuse-sessions demo)"""
import hashlib

import kernelstate as ks


def city_key(request):
    """One cached page per path and ?city= value."""
    return (request.path, request.query_arguments.get("city", [b"London"])[0])


ks.extension(session_key_func=city_key)
city = ks.state.session_args.get("city", [b"London"])[0].decode()
ks.state.template.title = f"Weather in {city}"
# A made-up but stable forecast, so the demo needs no network.
seed = int(hashlib.sha256(city.encode()).hexdigest(), 16)
temperature = ks.indicators.Number(name=f"{city} now", value=round(5 + seed % 250 / 10, 1), format="{value} °C")
ks.Column(f"# Weather in {city}", temperature, "Try `?city=Paris` or `?city=Berlin`.").servable()
