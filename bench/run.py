#!/usr/bin/env python
"""Run the kernelstate benchmarks side by side with Panel, bare Bokeh and a Tornado floor.

    .venv/bin/python bench/run.py                 # the full run (about 10 min on 2 cores)
    .venv/bin/python bench/run.py --quick         # small counts, under a minute
    .venv/bin/python bench/run.py --only setup,roundtrip --targets kernelstate,floor
    .venv/bin/python bench/run.py --setup-panel   # create bench/.venv-panel with Panel
    .venv/bin/python bench/run.py --from-json bench/results/<file>.json   # re-render README
    .venv/bin/python bench/run.py --from-json <full>.json --from-json <stream>.json   # two runs, in order

Every server is a fresh subprocess on a free port on 127.0.0.1 per
(scenario, configuration, target, repeat), stopped by PID when its scenario
ends. Results go to ``bench/results/<date>.json``; a full run also rewrites the
table in ``bench/README.md``. Targets that are not installed (Panel without
``bench/.venv-panel``, kernelstate.jupyter not wired yet) are skipped with a note.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import psutil  # noqa: E402

from harness import jupyter, plan, report, scaleout, scenarios, streaming  # noqa: E402
from harness.servers import PANEL_VENV, ServerProcess, Target, all_targets  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
SCENARIO_CAP_S = 300.0


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tornado

    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "python": platform.python_version(),
        "tornado": tornado.version,
    }


def setup_panel(venv: Path = PANEL_VENV) -> int:
    """Create the Panel venv: Panel needs Python >= 3.12, so it gets its own."""
    python = sys._base_executable if hasattr(sys, "_base_executable") else sys.executable  # noqa: SLF001
    print(f"creating {venv} with {python}", flush=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "panel>=1.10,<1.11"], check=True)
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import panel; print(panel.__version__)"],
                         capture_output=True, text=True, check=True)
    print(f"Panel {out.stdout.strip()} installed in {venv}")
    return 0


async def _scenario(name: str, srv: ServerProcess, sizes: scenarios.Sizes, tick_log: str) -> dict[str, Any]:
    if name == "html":
        return await scenarios.html(srv, sizes)
    if name == "setup":
        return await scenarios.setup(srv, sizes)
    if name == "roundtrip":
        return await scenarios.roundtrip(srv, sizes)
    if name == "memory":
        return await scenarios.memory(srv, sizes)
    if name == "periodic":
        return await scenarios.periodic(srv, sizes, tick_log)
    if name == "stream":
        return await streaming.stream(srv, sizes, tick_log)
    if name == "jupyter":
        return await jupyter.run(srv, sizes)
    if name == "scaleout":
        return await scaleout.scaleout(srv, sizes)
    raise ValueError(f"unknown scenario {name!r}; known: {', '.join(plan.SCENARIOS)}")


def run_case(case: plan.Case, target: Target, sizes: scenarios.Sizes) -> dict[str, Any]:
    """Start a fresh server for one case and target, run the scenario, stop the server."""
    workdir = Path(tempfile.mkdtemp(prefix="ks-bench-"))
    tick_log = str(workdir / "ticks.log")
    app = target.apps.get(case.app) or next(iter(target.apps.values()))
    env = {"BENCH_TICK_LOG": tick_log, **(scaleout.SECRET_ENV if case.scenario == "scaleout" else {})}
    srv = ServerProcess(target, app, case.flags, env=env, workdir=workdir)
    result: dict[str, Any] = {}
    noise = OtherLoad()
    try:
        result["startup_s"] = round(srv.start(), 3)
        result.update(asyncio.run(asyncio.wait_for(_scenario(case.scenario, srv, sizes, tick_log), SCENARIO_CAP_S)))
        result["other_cpu_cores"] = noise.cores(server_cpu_s=srv.cpu_s())
    except Exception as exc:  # noqa: BLE001 - one failed case must not end the run
        result["error"] = f"{type(exc).__name__}: {exc}"[:500]
        result["server_log_tail"] = srv.log_tail(1500)
    finally:
        srv.stop()
    return result


class OtherLoad:
    """CPU used by processes other than this client and the server under test.

    Other work on the machine (a test suite, a build) shows up as noise in
    every number; each case records how many cores it took on average.
    """

    def __init__(self) -> None:
        self.wall0 = time.perf_counter()
        self.busy0 = self._busy()
        self.own0 = self._own()

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    @staticmethod
    def _own() -> float:
        t = psutil.Process().cpu_times()
        return t.user + t.system

    def cores(self, server_cpu_s: float) -> float:
        """Average cores used by others since construction (the server started after it)."""
        wall = time.perf_counter() - self.wall0
        other = (self._busy() - self.busy0) - (self._own() - self.own0) - server_cpu_s
        return round(max(other, 0.0) / wall, 2) if wall > 0 else 0.0


def headline(scenario: str, result: dict[str, Any]) -> str:
    """A few numbers for the console line of one finished case."""
    if "error" in result:
        return "ERROR " + result["error"][:200]
    picks = {
        "html": [("p50 ms", "clients1.total_ms.p50"), ("8c p50 ms", "clients8.total_ms.p50")],
        "setup": [("1c/s", "clients1.sessions_per_s"), ("8c/s", "clients8.sessions_per_s"),
                  ("p50 ms", "clients1.total_ms.p50")],
        "roundtrip": [("slider ms", "sessions1.slider.rtt_ms.p50"), ("button ms", "sessions1.button.rtt_ms.p50")],
        "memory": [("idle MB", "rss_idle_mb"), ("MB/session", "mb_per_session"),
                   ("MB/cycle", "growth_mb_per_cycle")],
        "periodic": [("ticks %", "ticks_pct"), ("p95 ms", "interval_ms.p95"),
                     ("after destroy", "ticks_after_destroy"), ("not destroyed", "sessions_not_destroyed")],
        "stream": [("updates %", "updates_pct"), ("bytes/update", "bytes_per_update"),
                   ("CPU ms/update", "server_cpu_ms_per_update")],
        "scaleout": [("8c sessions/s", "setup.clients8.sessions_per_s"),
                     ("slider p50 ms", "roundtrip.sessions8.slider.rtt_ms.p50")],
        "jupyter": [("pooled p50 ms", "app_in_kernel.pooled_total_ms.p50"),
                    ("cold p50 ms", "app_in_kernel.cold_total_ms.p50"), ("errors", "app_in_kernel.error_samples")],
    }[scenario]
    return ", ".join(f"{label} {report.lookup(result, path)}" for label, path in picks)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts and fewer configurations (< 1 min)")
    ap.add_argument("--only", default=None, help="comma-separated scenarios: " + ",".join(plan.SCENARIOS)
                    + " (default: all; --quick leaves out jupyter, whose kernels take half a minute)")
    ap.add_argument("--targets", default="kernelstate,panel,bokeh,floor,kernelstate-jupyter",
                    help="comma-separated targets (kernelstate, panel, bokeh, floor, kernelstate-jupyter)")
    ap.add_argument("--config", default=None, help="only configurations whose name contains this text")
    ap.add_argument("--repeats", type=int, default=1, help="fresh-server repeats of every case")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results/<date>.json)")
    ap.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None,
                    help="rewrite the table in bench/README.md (default: on for full runs, off for --quick)")
    ap.add_argument("--setup-panel", action="store_true", help="create bench/.venv-panel with Panel, then exit")
    ap.add_argument("--from-json", type=Path, action="append", default=None,
                    help="only re-render the tables of a results file; repeat it to show several runs one after "
                    "another (e.g. a full run, then a later --only stream run)")
    args = ap.parse_args(argv)

    if args.setup_panel:
        return setup_panel()
    if args.from_json:
        runs = [json.loads(path.read_text()) for path in args.from_json]
        return _publish(runs, readme=args.readme is not False)

    if args.only is None:
        only = [s for s in plan.SCENARIOS if not (args.quick and s == "jupyter")]
    else:
        only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in plan.SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(plan.SCENARIOS)}")
    wanted = {t.strip() for t in args.targets.split(",") if t.strip()}
    sizes = scenarios.QUICK if args.quick else scenarios.FULL

    targets: dict[str, Target] = {n: t for n, t in all_targets().items() if n in wanted}
    notes: list[str] = []
    if "kernelstate-jupyter" in wanted and "jupyter" in only:
        why = jupyter.unavailable()
        if why is None:
            targets["kernelstate-jupyter"] = jupyter.jupyter_target()
        else:
            notes.append(f"jupyter skipped: {why}")
    for name, target in list(targets.items()):
        if target.unavailable:
            notes.append(f"{name} skipped: {target.unavailable}")
            del targets[name]
    for note in notes:
        print(f"note: {note}", flush=True)

    stamp = time.strftime("%Y-%m-%dT%H%M")
    out = args.out or RESULTS_DIR / f"{stamp}{'-quick' if args.quick else ''}.json"
    results: dict[str, Any] = {
        "env": machine(),
        "quick": args.quick,
        "repeats": args.repeats,
        "sizes": {k: v for k, v in vars(sizes).items()},
        "targets": {n: {"label": t.label, "version": t.version} for n, t in targets.items()},
        "skipped": notes,
        "file": out.name,
        "runs": [],
    }
    t_start = time.perf_counter()
    work = [c for c in plan.cases(args.quick)
            if c.scenario in only and (args.config is None or args.config in c.config)]
    for rep in range(args.repeats):
        for case in work:
            for name in case.targets:
                target = targets.get(name)
                if target is None:
                    continue
                t0 = time.perf_counter()
                result = run_case(case, target, sizes)
                results["runs"].append({"scenario": case.scenario, "config": case.config, "target": name,
                                        "flags": list(case.flags), "repeat": rep, "result": result})
                print(f"[{time.perf_counter() - t_start:6.1f}s] {case.scenario:9} {case.config:18} {name:12} "
                      f"({time.perf_counter() - t0:4.1f}s) {headline(case.scenario, result)}", flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(results, indent=1))
    results["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out} ({results['elapsed_s']} s)")
    readme = args.readme if args.readme is not None else not args.quick
    return _publish([results], readme=readme)


def _publish(all_results: list[dict[str, Any]], readme: bool) -> int:
    block = "\n".join(report.render(results) for results in all_results)
    print(block)
    if readme:
        text = README.read_text() if README.exists() else "# Benchmarks\n"
        README.write_text(report.replace_block(text, block))
        print(f"updated {README}")
    failed = [r for results in all_results for r in results["runs"] if "error" in r["result"]]
    for r in failed:
        print(f"failed: {r['scenario']} {r['config']} {r['target']}: {r['result']['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
