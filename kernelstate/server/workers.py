"""``kernelstate serve --num-procs N``: N worker processes on one port, and their supervisor.

The supervisor (the process started by the command) binds the port, loads
what every worker needs (:func:`~kernelstate.server.preload.preload`), then
forks N workers that share the listening sockets: the kernel hands each new
connection to one of them. Pages are stateless (:mod:`kernelstate.web.anyproc`)
so it does not matter which worker gets a page request, its WebSocket, or a
reconnect. Each worker is a whole server: its own sessions, its own
``--setup`` run, its own ``--warm`` (it accepts connections only after
warming; until every worker has, connections wait in the kernel's backlog or
go to a warm worker).

The supervisor:

- prints the startup banner once every worker is ready (as one process would);
- restarts a worker that dies, and logs it (signal or exit code, old and new
  pid); a worker that dies before every worker is ready (a failing ``--setup``,
  say), or that keeps dying (``MAX_RESTARTS`` within ``RESTART_WINDOW_S``),
  stops the whole server with exit code 1 instead of looping;
- on SIGTERM (or SIGINT) forwards it to every worker, which drains
  (``--drain-timeout``) and stops, waits for them (then SIGKILLs what is left
  after the drain plus ``STOP_GRACE_S``), and exits.

It shares one signing key with its workers: ``KERNELSTATE_SECRET_KEY``, or a
random one made before forking. It runs no event loop and no threads, so
forking is safe. Unix only (``os.fork``).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import select
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable

from ..errors import KernelstateError
from ..loading import AppSpec
from .options import ServeOptions

log = logging.getLogger(__name__)
MAX_RESTARTS = 10
RESTART_WINDOW_S = 60.0
STOP_GRACE_S = 10.0
POLL_S = 0.2

# A worker's body: given its options, its pre-bound sockets and a callback to call once it accepts
# connections, serve until stopped; returns the process's exit code.
WorkerMain = Callable[[ServeOptions, list[socket.socket], Callable[[], None]], int]


class WorkerCrashLoop(KernelstateError):
    """Workers keep dying right after they start."""


def worker_count(options: ServeOptions) -> int:
    return options.num_procs or os.cpu_count() or 1


def shared_key(options: ServeOptions) -> ServeOptions:
    """Options whose signing key every worker shares (tokens signed by one verify in another)."""
    if options.secret:
        return options
    return dataclasses.replace(options, secret_key=secrets.token_urlsafe(32))


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by signal {sig} ({signal.Signals(sig).name})"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    """Forks, watches and stops the workers; see the module docstring."""

    def __init__(self, options: ServeOptions, sockets: list[socket.socket], main: WorkerMain,
                 banner: Callable[[], None]) -> None:
        self.options = options
        self.sockets = sockets
        self.main = main
        self.banner = banner
        self.count = worker_count(options)
        self.workers: dict[int, int] = {}      # pid -> worker number
        self.ready: set[int] = set()           # worker numbers that accept connections
        self.restarts: deque[float] = deque()
        self.stopping = False
        self.announced = False
        self._ready_r, self._ready_w = os.pipe()

    # -- workers --------------------------------------------------------------------
    def _spawn(self, number: int) -> int:
        pid = os.fork()
        if pid == 0:   # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.close(self._ready_r)
                write_fd = self._ready_w

                def ready() -> None:
                    os.write(write_fd, b"%d\n" % number)

                code = self.main(self.options, self.sockets, ready)
            except BaseException:
                log.exception("worker %d failed", number)
            finally:
                logging.shutdown()
                os._exit(code)
        self.workers[pid] = number
        return pid

    def run(self) -> int:
        """Start the workers and supervise them until stopped; returns the exit code."""
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        for number in range(1, self.count + 1):
            self._spawn(number)
        log.info("started %d worker processes (pids %s)", self.count, ", ".join(map(str, self.workers)))
        code = 0
        while self.workers:
            self._read_ready()
            if self.stopping:
                code = self._stop_all()
                break
            try:
                self._reap()
            except WorkerCrashLoop as exc:
                log.error("%s", exc)
                self.stopping = True
                self._stop_all()
                return 1
        return code

    def _read_ready(self) -> None:
        readable, _, _ = select.select([self._ready_r], [], [], POLL_S)
        if not readable:
            return
        for line in os.read(self._ready_r, 4096).split():
            self.ready.add(int(line))
        if not self.announced and len(self.ready) >= self.count:
            self.announced = True
            self.banner()

    def _reap(self) -> None:
        while self.workers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            number = self.workers.pop(pid, None)
            if number is None:
                continue
            self.ready.discard(number)
            if self.stopping:
                continue
            if not self.announced:
                raise WorkerCrashLoop(f"worker {number} (pid {pid}) {describe_exit(status)} before every worker "
                                      "was ready; stopping: see its log lines above for why")
            now = time.monotonic()
            self.restarts.append(now)
            while self.restarts and now - self.restarts[0] > RESTART_WINDOW_S:
                self.restarts.popleft()
            if len(self.restarts) > MAX_RESTARTS:
                raise WorkerCrashLoop(f"workers died {len(self.restarts)} times within {RESTART_WINDOW_S:.0f} s "
                                      f"(the last, worker {number} pid {pid}, {describe_exit(status)}); stopping: "
                                      "see the workers' log lines above for why")
            new = self._spawn(number)
            log.warning("worker %d (pid %d) %s; restarted it as pid %d", number, pid, describe_exit(status), new)

    # -- stopping -------------------------------------------------------------------
    def _on_stop_signal(self, signum: int, frame: object) -> None:
        if not self.stopping:
            self.stopping = True
            self._signal = signum
            self._forward(signum)   # at once: the workers start draining now

    def _forward(self, sig: int) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _stop_all(self) -> int:
        sig = getattr(self, "_signal", None)
        if sig is None:   # not from a signal (a crash loop): stop them now
            sig = self._signal = signal.SIGTERM
            self._forward(sig)
        log.info("stopping %d worker processes (%s)", len(self.workers), signal.Signals(sig).name)
        deadline = time.monotonic() + self.options.drain_timeout_s + STOP_GRACE_S
        while self.workers and time.monotonic() < deadline:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.05)
                continue
            self.workers.pop(pid, None)
        for pid, number in list(self.workers.items()):
            log.error("worker %d (pid %d) did not stop within %.0f s; killing it", number, pid,
                      self.options.drain_timeout_s + STOP_GRACE_S)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.workers.pop(pid, None)
        for sock in self.sockets:
            sock.close()
        log.info("all workers stopped")
        return 0


def banner_lines(apps: list[AppSpec], options: ServeOptions, port: int, version: str, count: int) -> list[str]:
    host = "localhost" if options.address in ("127.0.0.1", "0.0.0.0", "::", "localhost") else options.address
    url = f"http://{host}:{port}{options.prefix}/"
    lines = [f"kernelstate {version} serving {len(apps)} app(s) on {url} with {count} worker processes"]
    for app in apps:
        lines.append(f"  {url.rstrip('/') + app.route}  ({app.title})")
    return lines


def print_banner(lines: list[str]) -> None:
    for line in lines:
        print(line, flush=True)
    sys.stdout.flush()
