"""The servers under test: one subprocess each, on a free port on 127.0.0.1.

A :class:`Target` says how to start one implementation (kernelstate, Panel,
bare Bokeh, the Tornado floor) with a given app and flags; a
:class:`ServerProcess` is one running instance. Only processes started here
are ever stopped, by PID: the server and the children it spawned.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
APPS_DIR = BENCH_DIR / "apps"
PANEL_VENV = BENCH_DIR / ".venv-panel"


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Target:
    """How to start one implementation.

    Attributes:
        name: short key used in results (``kernelstate``, ``panel``, ...).
        label: column heading, with the version when known.
        argv: builds the command line from (app file, port, extra flags).
        apps: app files by role (``basic``, ``slow``, ``periodic``, ``stream``).
        modes: which serve modes (``reuse``, ``warm``) the implementation has.
        liveness_path: an endpoint answering JSON with the live session count.
        unavailable: why this target cannot run here, or None.
    """

    name: str
    label: str
    argv: Callable[[Path, int, Sequence[str]], list[str]]
    apps: dict[str, Path]
    modes: frozenset[str] = frozenset()
    liveness_path: str | None = None
    unavailable: str | None = None
    version: str | None = None

    def path_for(self, app: Path) -> str:
        """The URL path a single served app file gets (``/<file stem>``)."""
        return "/" + app.stem


def _console_script(bindir: Path, name: str) -> Path | None:
    found = shutil.which(name, path=str(bindir))
    return Path(found) if found else None


def _version_of(python: Path, module: str) -> str | None:
    try:
        out = subprocess.run(
            [str(python), "-c", f"import {module}; print({module}.__version__)"],
            capture_output=True, text=True, timeout=60, check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return out.stdout.strip() or None


def kernelstate_target() -> Target:
    python = Path(sys.executable)
    apps = {k: APPS_DIR / "ks" / f"{k}.py" for k in ("basic", "slow", "periodic", "stream")}
    version = _version_of(python, "kernelstate")
    script = _console_script(python.parent, "kernelstate")
    if script is not None:
        prefix = [str(script), "serve"]
    else:
        prefix = [str(python), "-c", "import sys; from kernelstate.cli import main; sys.exit(main())", "serve"]

    def argv(app: Path, port: int, flags: Sequence[str]) -> list[str]:
        # One load generator plays every client from one address: lift the per-client caps
        # (the other servers have none), so the scenarios measure the same load for all.
        return [*prefix, str(app), "--port", str(port), "--address", HOST,
                "--max-sessions-per-client", "0", "--max-connections-per-client", "0", *flags]

    return Target(
        name="kernelstate",
        label=f"kernelstate {version}" if version else "kernelstate",
        argv=argv,
        apps=apps,
        modes=frozenset({"reuse", "warm"}),
        liveness_path="/liveness",
        unavailable=None if version else f"kernelstate is not importable from {python}",
        version=version,
    )


def panel_target(venv: Path = PANEL_VENV) -> Target:
    python = venv / "bin" / "python"
    apps = {k: APPS_DIR / "panel" / f"{k}.py" for k in ("basic", "slow", "periodic", "stream")}
    version = _version_of(python, "panel") if python.exists() else None

    def argv(app: Path, port: int, flags: Sequence[str]) -> list[str]:
        return [str(venv / "bin" / "panel"), "serve", str(app), "--port", str(port), "--address", HOST, *flags]

    why = None
    if version is None:
        why = f"no Panel in {venv} (create it with: bench/run.py --setup-panel)"
    return Target(
        name="panel",
        label=f"Panel {version}" if version else "Panel",
        argv=argv,
        apps=apps,
        modes=frozenset({"reuse", "warm"}),
        unavailable=why,
        version=version,
    )


def bokeh_target() -> Target:
    python = Path(sys.executable)
    apps = {k: APPS_DIR / "bokeh" / f"{k}.py" for k in ("basic", "periodic", "stream")}
    version = _version_of(python, "bokeh")
    script = _console_script(python.parent, "bokeh")

    def argv(app: Path, port: int, flags: Sequence[str]) -> list[str]:
        return [str(script), "serve", str(app), "--port", str(port), "--address", HOST, *flags]

    return Target(
        name="bokeh",
        label=f"Bokeh {version}" if version else "Bokeh",
        argv=argv,
        apps=apps,
        unavailable=None if script and version else f"no bokeh console script next to {python}",
        version=version,
    )


def floor_target() -> Target:
    python = Path(sys.executable)
    floor = BENCH_DIR / "floor.py"
    # the floor serves any /<name>; the app files only name the path
    apps = {k: APPS_DIR / "ks" / f"{k}.py" for k in ("basic", "slow")}

    def argv(app: Path, port: int, flags: Sequence[str]) -> list[str]:
        return [str(python), str(floor), "--port", str(port), *flags]

    return Target(name="floor", label="Tornado floor", argv=argv, apps=apps)


def all_targets() -> dict[str, Target]:
    """Every known target, in column order."""
    return {t.name: t for t in (kernelstate_target(), panel_target(), bokeh_target(), floor_target())}


@dataclass
class ServerProcess:
    """One running server started from a :class:`Target`.

    Args:
        target: what to start.
        app: the app file to serve.
        flags: extra command-line flags.
        env: extra environment variables for the server.
    """

    target: Target
    app: Path
    flags: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ks-bench-")))
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _started_pids: set[int] = field(default_factory=set)

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def path(self) -> str:
        return self.target.path_for(self.app)

    def start(self, timeout_s: float = 90.0) -> float:
        """Start the server and wait until its port accepts connections.

        Returns:
            Seconds from spawn to listening.
        """
        self.port = free_port()
        argv = self.target.argv(self.app, self.port, list(self.flags))
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        with open(self.log_path, "ab") as log:
            log.write(("$ " + " ".join(argv) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=self.workdir
            )
        self._started_pids.add(self.proc.pid)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.target.name} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return time.perf_counter() - t0
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.target.name} did not listen within {timeout_s}s: {self.log_tail()}")

    def log_tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def processes(self) -> list[psutil.Process]:
        """The server process and its current children."""
        if self.proc is None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            kids = root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self._started_pids.update(k.pid for k in kids)
        return [root, *kids]

    def rss_mb(self) -> float:
        """Resident memory of the server and its children, in MiB."""
        total = 0
        for p in self.processes():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / 2**20

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far by the server and its children."""
        total = 0.0
        for p in self.processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> None:
        """Stop the server and the children it spawned, by PID only."""
        if self.proc is None:
            return
        kids = self.processes()[1:]
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for kid in kids:
            if kid.pid not in self._started_pids:
                continue
            try:
                kid.terminate()
                kid.wait(5)
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired:
                try:
                    kid.kill()
                except psutil.NoSuchProcess:
                    pass
        self.proc = None
