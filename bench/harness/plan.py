"""What a run measures: which scenario, with which app and flags, on which targets.

A :class:`Case` is one configuration of one scenario; the runner starts a
fresh server per (case, target, repeat). The floor has one configuration
per scenario; the report uses it as the floor of every row of that scenario.
"""
from __future__ import annotations

from dataclasses import dataclass

from .scaleout import CONFIGS as SCALEOUT_CONFIGS
from .scenarios import EXPIRY_FLAGS

SCENARIOS = ("html", "setup", "roundtrip", "memory", "periodic", "stream", "jupyter", "scaleout")

MODES: dict[str, tuple[str, ...]] = {
    "default": (),
    "reuse": ("--reuse-sessions",),
    "warm": ("--warm",),
    "reuse+warm": ("--reuse-sessions", "--warm"),
}

SERVERS = ("kernelstate", "panel", "bokeh")


@dataclass(frozen=True)
class Case:
    """One configuration of one scenario.

    Attributes:
        scenario: one of :data:`SCENARIOS`.
        config: a short name, unique within the scenario (``basic default``).
        app: the app role (``basic``, ``slow``, ``periodic``, ``stream``).
        flags: server flags for every target of this case.
        targets: target names that run this case.
    """

    scenario: str
    config: str
    app: str
    flags: tuple[str, ...]
    targets: tuple[str, ...]


def cases(quick: bool = False) -> list[Case]:
    """The whole matrix, or its small ``--quick`` subset."""
    out: list[Case] = []
    apps = ("basic",) if quick else ("basic", "slow")
    modes = ("default", "reuse") if quick else tuple(MODES)
    for app in apps:
        for mode in modes:
            targets: tuple[str, ...] = ("kernelstate", "panel")
            if mode == "default":
                targets += ("bokeh", "floor") if app == "basic" else ()
            out.append(Case("html", f"{app} {mode}", app, MODES[mode], targets))
    out.append(Case("setup", "basic default", "basic", (), (*SERVERS, "floor")))
    if not quick:
        out.append(Case("setup", "basic reuse+warm", "basic", MODES["reuse+warm"], ("kernelstate", "panel")))
        out.append(Case("setup", "slow default", "slow", (), ("kernelstate", "panel")))
    out.append(Case("roundtrip", "basic default", "basic", (), (*SERVERS, "floor")))
    out.append(Case("memory", "basic", "basic", EXPIRY_FLAGS, SERVERS))
    out.append(Case("periodic", "100 ms ticks", "periodic", EXPIRY_FLAGS, SERVERS))
    out.append(Case("stream", "100 rows / 100 ms", "stream", (), SERVERS))
    out.append(Case("jupyter", "app in a kernel", "basic", (), ("kernelstate-jupyter",)))
    for config, flags in SCALEOUT_CONFIGS.items():
        out.append(Case("scaleout", config, "basic", flags, ("kernelstate",)))
    if quick:
        # bare Bokeh is a reference column; the quick run keeps to kernelstate, Panel and the floor
        out = [Case(c.scenario, c.config, c.app, c.flags, tuple(t for t in c.targets if t != "bokeh")) for c in out]
    return out
