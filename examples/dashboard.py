"""Sales dashboard: filters, a table and a plot, with new data every second"""
import datetime as dt
import random

import pandas as pd
from bokeh.plotting import figure

import kernelstate as ks

REGIONS = ["north", "south", "east", "west"]
START = dt.date(2024, 1, 1)
# ?refresh_ms=0 turns the live refresh off (the browser test does); the default adds a day per second.
refresh_ms = int(ks.state.session_args.get("refresh_ms", [b"1000"])[0])

rng = random.Random(7)  # app code runs per session: each tab has its own data and its own refresh


def days(first: int, count: int) -> pd.DataFrame:
    """Made-up sales for `count` days from day `first`, one row per region and day."""
    rows = [{"day": pd.Timestamp(START + dt.timedelta(days=d)), "region": region, "sales": round(rng.uniform(10, 100), 1)}
            for d in range(first, first + count) for region in REGIONS]
    return pd.DataFrame(rows)


next_day = 60
dates = ks.widgets.DateRangeSlider(name="Days", start=START, end=START + dt.timedelta(days=364),
                                   value=(START, START + dt.timedelta(days=59)), sizing_mode="stretch_width")
regions = ks.widgets.MultiChoice(name="Regions", options=REGIONS, value=list(REGIONS), sizing_mode="stretch_width")
table = ks.widgets.DataTable(days(0, next_day), show_index=False, height=320, sizing_mode="stretch_width",
                             titles={"day": "Day", "region": "Region", "sales": "Sales"})


def chosen(df: pd.DataFrame, span: tuple[dt.date, dt.date], picked: list[str]) -> pd.DataFrame:
    first, last = (pd.Timestamp(d) for d in span)
    return df[(df["day"] >= first) & (df["day"] <= last) & df["region"].isin(picked)]


def summary(span: tuple[dt.date, dt.date], picked: list[str], df: pd.DataFrame, selection: list[int]) -> str:
    rows = chosen(df, span, picked)
    return (f"**{len(rows)} rows** from {span[0]:%d %b} to {span[1]:%d %b}, total sales "
            f"**{rows['sales'].sum():,.1f}**; {len(selection)} selected in the table")


def plot(span: tuple[dt.date, dt.date], picked: list[str], df: pd.DataFrame) -> figure:
    rows = chosen(df, span, picked).groupby("day", as_index=False)["sales"].sum()
    fig = figure(x_axis_type="datetime", height=320, sizing_mode="stretch_width", title="Daily sales (chosen regions)")
    fig.line(rows["day"], rows["sales"], line_width=2)
    return fig


def refresh() -> None:
    global next_day
    table.stream(days(next_day, 1), rollover=365 * len(REGIONS))
    next_day += 1


if refresh_ms > 0:
    ks.state.add_periodic_callback(refresh, period=refresh_ms)

ks.Column(
    "# Sales dashboard",
    ks.Row(dates, regions, sizing_mode="stretch_width"),
    ks.bind(summary, dates, regions, table.param.value, table.param.selection),
    ks.Tabs(("Table", table), ("Plot", ks.bind(plot, dates, regions, table.param.value)), sizing_mode="stretch_width"),
    sizing_mode="stretch_width",
).servable(title="Sales dashboard")
