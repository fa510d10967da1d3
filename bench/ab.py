#!/usr/bin/env python
"""Two checkouts of kernelstate served side by side, requests alternating between them.

    git worktree add /tmp/ks-base bff7faa
    .venv/bin/python bench/ab.py --base /tmp/ks-base --head . -n 200
    git worktree remove /tmp/ks-base

Each checkout's ``kernelstate serve`` runs ``apps/ks/basic.py`` with that
checkout first on ``PYTHONPATH``, on its own port on 127.0.0.1. Then, request
by request, the client alternates between the two (and swaps the order every
round), so load from other work on the machine falls on both alike. Phases:
``get`` (the app page, default flags: each GET builds a session) and
``session`` (GET, WebSocket + ACK, PULL-DOC, close). Per phase and side it
prints n, p50/p95 latency and server CPU per operation (user+system of the
server process tree over the phase). Both servers are stopped by PID.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from harness.protocol import BokehClient, http_get  # noqa: E402
from harness.servers import APPS_DIR, HOST, ServerProcess, Target  # noqa: E402

APP = APPS_DIR / "ks" / "basic.py"
CAP_FLAGS = ("--max-sessions-per-client", "0", "--max-connections-per-client", "0")


def _command() -> list[str]:
    return [sys.executable, "-c", "import sys; from kernelstate.cli import main; sys.exit(main())", "serve"]


def _lifts_caps(checkout: Path) -> bool:
    """Whether this checkout's serve has per-client caps (they must be lifted: one client plays every visitor)."""
    out = subprocess.run([*_command(), "--help"], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(checkout), "PATH": ""}, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"`kernelstate serve --help` failed with PYTHONPATH={checkout}: {out.stderr[-500:]}")
    return CAP_FLAGS[0] in out.stdout


def server(name: str, checkout: Path) -> ServerProcess:
    extra = CAP_FLAGS if _lifts_caps(checkout) else ()

    def argv(app: Path, port: int, flags: Sequence[str]) -> list[str]:
        return [*_command(), str(app), "--port", str(port), "--address", HOST, *extra, *flags]

    target = Target(name=name, label=f"{name} ({checkout})", argv=argv, apps={"basic": APP})
    return ServerProcess(target, APP, env={"PYTHONPATH": str(checkout)})


async def _one(srv: ServerProcess, phase: str) -> float:
    if phase == "get":
        response = await http_get(srv.port, srv.path)
        if response.status != 200:
            raise RuntimeError(f"GET {srv.path} on {srv.target.label} -> HTTP {response.status}")
        return response.total_s
    client = BokehClient(srv.port, srv.path)
    try:
        return (await client.establish())["total"]
    finally:
        await client.close()


async def compare(servers: dict[str, ServerProcess], n: int) -> list[str]:
    """Run both phases, alternating sides; one line per (phase, side)."""
    for srv in servers.values():
        for _ in range(5):
            await http_get(srv.port, srv.path)
    lines = []
    for phase, count in (("get", n), ("session", max(n // 2, 1))):
        times: dict[str, list[float]] = {name: [] for name in servers}
        cpu0 = {name: srv.cpu_s() for name, srv in servers.items()}
        names = list(servers)
        for i in range(count):
            for name in names if i % 2 == 0 else names[::-1]:
                times[name].append(await _one(servers[name], phase) * 1e3)
        for name, srv in servers.items():
            ts = sorted(times[name])
            cpu_ms = (srv.cpu_s() - cpu0[name]) * 1e3 / len(ts)
            lines.append(f"{phase:8} {name}: n={len(ts)} p50 {statistics.median(ts):.2f} ms "
                         f"p95 {ts[int(len(ts) * 0.95)]:.2f} ms server CPU {cpu_ms:.2f} ms/op")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True, help="the older checkout (e.g. a git worktree)")
    ap.add_argument("--head", type=Path, default=BENCH_DIR.parent, help="the newer checkout (default: this one)")
    ap.add_argument("-n", type=int, default=200, help="GETs per side; session setups are n/2 per side")
    args = ap.parse_args(argv)
    servers = {"base": server("base", args.base.resolve()), "head": server("head", args.head.resolve())}
    try:
        for srv in servers.values():
            srv.start()
        lines = asyncio.run(asyncio.wait_for(compare(servers, args.n), 600))
    finally:
        for srv in servers.values():
            srv.stop()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
