"""R16: one message cannot stall the server.

A PATCH-DOC far under the size limit can still define tens of thousands of
models; Bokeh builds each on the event loop, so every session of the process
waited for it (11-42 s and +208 MB for 25,000 ``Div`` definitions, 1.5 MB
of JSON). The endpoint now bounds the work of one message before Bokeh
decodes it (:class:`kernelstate.limits.MessageLimits`):

- the hostile message closes its connection with 4009 and a log line naming
  the session, while another tab's round trips stay fast and RSS stays flat;
- a client sending the worst message the limits accept, back to back, leaves
  other tabs' round trips and ``/liveness`` far from stalled (figures: p50/p99
  quiet vs under attack, the worst message's service time, RSS before/after):
  its service time is bounded by the limits, and after each such message its
  connection waits as long, so it gets at most half the loop;
- each limit is configurable with ``--message-limit NAME=N`` and names itself
  in the close reason and the log line.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from bokeh.models import TextInput
from bokeh.protocol import Protocol
from bokeh.protocol.message import Message

from kernelstate.endpoint import message_frames
from kernelstate.testing import ClosedError, ProtocolClient

from .conftest import fetch, percentile, run, wait_until

protocol = Protocol()

APP = '''"""Message work"""
import kernelstate as ks

text = ks.widgets.TextInput(name="text", value="")
echo = ks.pane.Str("")
text.param.watch(lambda e: setattr(echo, "object", f"echo {e.new}"), "value")
ks.Column(text, echo).servable()
'''


def serve(ks_serve_process: Any, tmp_path: Path, *args: str) -> tuple[Any, str]:
    script = tmp_path / "work.py"
    script.write_text(APP)
    proc = ks_serve_process(str(script), *args)
    return proc, proc.url.rstrip("/") + "/work"


def patch_message(target_id: str, new: Any) -> Message[Any]:
    """A PATCH-DOC setting ``tags`` (any JSON, models included) of model ``target_id``, as sent."""
    content = {"events": [{"kind": "ModelChanged", "model": {"id": target_id}, "attr": "tags", "new": new}]}
    header = {"msgid": uuid.uuid4().hex, "msgtype": "PATCH-DOC", "num_buffers": 0}
    return protocol.assemble(json.dumps(header), "{}", json.dumps(content))


def definitions(names: list[str]) -> list[dict[str, str]]:
    prefix = uuid.uuid4().hex[:8]
    return [{"type": "object", "name": name, "id": f"evil-{prefix}-{i}"} for i, name in enumerate(names)]


async def send_and_wait(tab: ProtocolClient, message: Message[Any]) -> tuple[str, float]:
    """Send a message; ("OK" | "ERROR" | "closed <code>", seconds until the answer)."""
    t0 = time.perf_counter()
    try:
        reply = await tab.request(message)
    except ClosedError as exc:
        return f"closed {exc.code}", time.perf_counter() - t0
    return str(reply.msgtype), time.perf_counter() - t0


async def round_trips(tab: ProtocolClient, stop: asyncio.Event, out: list[float]) -> None:
    box = tab.find(TextInput)[0]
    i = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        await tab.set(box, "value", f"v{i}")
        out.append(time.perf_counter() - t0)
        i += 1
        await asyncio.sleep(0.02)


async def liveness(url: str, stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        response = await fetch(url)
        assert response.code == 200, response.code
        out.append(time.perf_counter() - t0)
        await asyncio.sleep(0.02)


def ms(values: list[float]) -> str:
    return f"{percentile(values, 50) * 1000:.1f}/{percentile(values, 99) * 1000:.1f}"


def test_a_message_defining_25000_models_is_refused_and_other_tabs_keep_working(
        ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """25,000 Div definitions (1.2 MB, under the 20 MiB size limit): 4009 + a log line naming the
    session; another tab's round trips stay under 1 s meanwhile; the server's RSS stays flat."""
    proc, url = serve(ks_serve_process, tmp_path)
    server = psutil.Process(proc.proc.pid)

    async def main() -> None:
        async with ProtocolClient(url, timeout=60) as victim, ProtocolClient(url, timeout=60) as attacker:
            rss0 = server.memory_info().rss / 2**20
            hostile = patch_message(attacker.find(TextInput)[0].id, definitions(["Div"] * 25_000))
            stop, rtts = asyncio.Event(), list[float]()
            other = asyncio.ensure_future(round_trips(victim, stop, rtts))
            await asyncio.sleep(0.3)
            outcome, seconds = await send_and_wait(attacker, hostile)
            await asyncio.sleep(0.5)
            stop.set()
            await other
            rss1 = server.memory_info().rss / 2**20
            figures("hostile message", f"{len(hostile.content_json) / 2**20:.2f} MB -> {outcome} "
                                       f"after {seconds * 1000:.0f} ms")
            figures("other tab round trip p50/p99/max ms during it",
                    f"{ms(rtts)}/{max(rtts) * 1000:.1f}")
            figures("server RSS growth MB", f"{rss1 - rss0:+.1f}")
            assert max(rtts) < 1.0, f"another tab waited {max(rtts):.1f} s for one hostile message"
            assert outcome == "closed 4009", outcome
            assert rss1 - rss0 < 50, f"the server grew {rss1 - rss0:.0f} MB for one refused message"
            line = f"session={attacker.session_id}"
            assert wait_until(lambda: any("exceeds the" in x and line in x for x in proc.output), 5), \
                proc.log_text()[-2000:]
            figures("log line", next(x for x in proc.output if line in x).strip()[-160:])
            # The victim's session and connection are untouched; the attacker's session can reconnect.
            await victim.set(victim.find(TextInput)[0], "value", "after")
            await victim.wait_for(lambda: "echo after" in victim.text())

    run(main)


def worst_accepted(target_id: str, limits: Any = None) -> Message[Any]:
    """A PATCH-DOC at every limit at once (default limits): the heaviest model class that fits plus
    ``Div`` s up to ``models``, ``references`` references, nesting to ``depth``, ints up to ``values``."""
    from kernelstate import limits as work

    limits = limits or work.MessageLimits()
    heavy = max(["DatetimeAxis", "Plot", "TimedeltaAxis", "RangeTool", "Div"],
                key=lambda n: work.model_weight(n) if work.model_weight(n) <= limits.models else 0)
    names = [heavy] + ["Div"] * (limits.models - work.model_weight(heavy))
    nested: Any = 0
    for _ in range(limits.depth - 4):  # depth counts objects and arrays: content > events > event > new > ...
        nested = [nested]
    # The event's own {"id": target} is one of the references.
    new: list[Any] = [*definitions(names), *[{"id": target_id}] * (limits.references - 1), nested]
    used = sum(work.count_values(f) for f in message_frames(patch_message(target_id, new)))
    new.extend(range(limits.values - used - 2))
    message = patch_message(target_id, new)
    work.check_patch(message.content, limits)  # accepted, and right at the limits:
    assert limits.values - 4 <= sum(work.count_values(f) for f in message_frames(message)) <= limits.values
    return message


def test_the_worst_accepted_message_leaves_other_tabs_responsive(
        ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """A client sends the worst message the default limits accept, back to back for 4 s: another tab's
    round trips and /liveness stay far from stalled (p99 < 1 s asserted; figures vs quiet), RSS flat."""
    proc, url = serve(ks_serve_process, tmp_path)
    server = psutil.Process(proc.proc.pid)
    live_url = proc.url.rstrip("/") + "/liveness"

    async def measure(victim: ProtocolClient, seconds: float) -> tuple[list[float], list[float]]:
        stop, rtts, lives = asyncio.Event(), list[float](), list[float]()
        tasks = [asyncio.ensure_future(round_trips(victim, stop, rtts)),
                 asyncio.ensure_future(liveness(live_url, stop, lives))]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        return rtts, lives

    async def main() -> None:
        async with ProtocolClient(url, timeout=30) as victim, ProtocolClient(url, timeout=30) as attacker:
            target = attacker.find(TextInput)[0].id
            await measure(victim, 0.5)  # warm-up
            quiet_rtt, quiet_live = await measure(victim, 3.0)
            alone = []  # the worst message's service time, nothing else running (past the throttle pause)
            for _ in range(5):
                outcome, seconds = await send_and_wait(attacker, worst_accepted(target))
                assert outcome == "OK", outcome
                alone.append(seconds)
                await asyncio.sleep(2 * seconds + 0.1)
            rss0 = server.memory_info().rss / 2**20
            stop, served, outcomes = asyncio.Event(), [], []

            async def attack() -> None:
                while not stop.is_set():
                    outcome, seconds = await send_and_wait(attacker, worst_accepted(target))
                    outcomes.append(outcome)
                    served.append(seconds)
                    if outcome != "OK":
                        return

            attacking = asyncio.ensure_future(attack())
            await asyncio.sleep(0.3)
            rtts, lives = await measure(victim, 4.0)
            stop.set()
            await attacking
            await asyncio.sleep(1.0)
            rss1 = server.memory_info().rss / 2**20
            size = sum(len(f) for f in message_frames(worst_accepted(target)))
            figures("worst accepted message", f"{size / 1024:.0f} KB, answered alone in "
                                              f"{' '.join(f'{x * 1000:.0f}' for x in sorted(alone))} ms; "
                                              f"{len(served)} sent back to back in 4 s")
            figures("other tab round trip p50/p99 ms: quiet -> under attack", f"{ms(quiet_rtt)} -> {ms(rtts)}")
            figures("/liveness p50/p99 ms: quiet -> under attack", f"{ms(quiet_live)} -> {ms(lives)}")
            figures("server RSS MB before/after the attack", f"{rss0:.0f}/{rss1:.0f}")
            assert set(outcomes) == {"OK"}, outcomes[-3:]
            assert len(served) >= 3, "the attacker barely got a message through"
            assert percentile(rtts, 99) < 1.0 and percentile(lives, 99) < 1.0, (ms(rtts), ms(lives))
            assert rss1 - rss0 < 100, f"the server grew {rss1 - rss0:.0f} MB"

    run(main)


def test_each_limit_is_configurable_and_named_in_the_close(ks_serve_process: Any, tmp_path: Path) -> None:
    """--message-limit NAME=N: a message at each limit is answered; one past it gets 4009 naming the limit."""
    from kernelstate.limits import MessageLimits

    limits = MessageLimits(values=400, depth=10, models=3, references=5)
    proc, url = serve(ks_serve_process, tmp_path, *[a for k, v in limits.to_json().items()
                                                    for a in ("--message-limit", f"{k}={v}")])

    def nest(depth: int) -> Any:
        value: Any = 0
        for _ in range(depth - 3):  # objects and arrays count: content > events > event > new (a list) > ...
            value = [value]
        return value

    def cases(target: str) -> dict[str, tuple[Any, Any]]:
        return {
            "models": (definitions(["Div"] * 3), definitions(["Div"] * 4)),
            "references": ([{"id": target}] * 4, [{"id": target}] * 5),  # + the event's own reference
            "depth": (nest(10), nest(11)),
            "values": (list(range(300)), list(range(400))),
        }

    async def main() -> None:
        for name in ("models", "references", "depth", "values"):
            for index, expected in ((0, "OK"), (1, "closed 4009")):
                async with ProtocolClient(url) as tab:
                    target = tab.find(TextInput)[0].id
                    outcome, _ = await send_and_wait(tab, patch_message(target, cases(target)[name][index]))
                    assert outcome == expected, (name, outcome, tab.errors)
                    if expected != "OK":
                        assert name in (tab.close_reason or ""), tab.close_reason
                        logged = (f"{name} limit", f"session={tab.session_id}")

                        def seen(parts: tuple[str, str] = logged) -> bool:
                            return any(all(p in line for p in parts) for line in proc.output)
                        assert wait_until(seen, 5), proc.log_text()[-1500:]

    run(main)
