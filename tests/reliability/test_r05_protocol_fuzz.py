"""R5: hostile protocol input closes (at most) its own connection, cleanly.

Hypothesis builds client traffic: random frames (text, binary, invalid UTF-8
in text frames), Bokeh messages with mutated headers (missing/unknown/typed-
wrong ``msgtype``, ``num_buffers`` in {-1, 0, 2, 10**6, ...}), PATCH-DOC
events built from the live document's model ids and property names with
arbitrary values, patches to unknown models, PUSH-DOC from the client, lying
buffer counts and oversized buffers. Each example runs on its own connection.

After every example the connection has either answered a follow-up request
or been closed with a 4000-4999 code and a readable reason (transport-level
refusals that tornado makes itself are allowed: 1009 for a frame over the size
limit, an abort for invalid UTF-8); the example logged at most 4 KB; the
server answers ``/liveness``. After every batch a long-lived sentinel session
still round-trips a change and ``GET /`` answers 200 in under a second. At
the end sessions are back to baseline and RSS grew by less than 50 MB.
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import psutil
import pytest
from bokeh.models import TextInput
from bokeh.protocol import Protocol
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tornado.websocket import WebSocketClosedError

from kernelstate.testing import ClosedError, ProtocolClient

from .conftest import fetch, wait_until

MAX_MESSAGE = 256 * 1024
protocol = Protocol()


FUZZ_APP = '''"""Fuzz target"""
import kernelstate as ks

text = ks.widgets.TextInput(name="text", value="")
echo = ks.pane.Str("")
slider = ks.widgets.IntSlider(name="n", start=0, end=10, value=1)
select = ks.widgets.Select(name="pick", options=["a", "b"], value="a")
button = ks.widgets.Button(name="go")
text.param.watch(lambda e: setattr(echo, "object", f"echo {e.new}"), "value")
button.on_click(lambda e: setattr(echo, "object", "clicked"))
ks.Column(text, echo, slider, select, button).servable()
'''


class LoopThread:
    """One event loop in a thread for the whole campaign (the sentinel lives on it)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class InvalidText(bytes):
    """Bytes sent in a *text* frame (invalid UTF-8 when they do not decode)."""


# -- strategies -------------------------------------------------------------------------
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=16))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=12)
msgtypes = (st.sampled_from(["PULL-DOC-REQ", "PATCH-DOC", "PUSH-DOC", "SERVER-INFO-REQ", "ACK", "OK", "ERROR",
                             "PULL-DOC-REPLY", "SERVER-INFO-REPLY", "EVAL", "", "patch-doc"]) | json_values)
num_buffers = st.sampled_from([-1, 0, 1, 2, 64, 65, 10**6]) | st.integers() | json_values
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12) | json_values

# Values the Bokeh decoder treats specially: references, model definitions, ndarrays, bytes, maps.
encoded = st.one_of(
    json_values,
    st.builds(lambda i: {"id": i}, ids),
    st.builds(lambda n, i, a: {"type": "object", "name": n, "id": i, "attributes": a},
              st.sampled_from(["Slider", "Div", "CustomJS", "ColumnDataSource", "NoSuchModel", "Document"]) | st.text(max_size=10),
              ids, st.dictionaries(st.sampled_from(["value", "text", "code", "data", "title"]) | st.text(max_size=6), json_values, max_size=3)),
    st.builds(lambda shape, dtype, data: {"type": "ndarray", "array": {"type": "bytes", "data": data}, "shape": shape,
                                          "dtype": dtype, "order": "little"},
              st.lists(st.sampled_from([0, 1, 3, -1, 10**9, 2**62]), max_size=3),
              st.sampled_from(["float64", "int32", "uint8", "object", "bool", "complex128", "<U10", "nope"]),
              st.sampled_from(["", "AAAA", base64.b64encode(b"\x00" * 24).decode(), "!!!"])),
    st.builds(lambda entries: {"type": "map", "entries": entries}, st.lists(st.lists(json_values, max_size=3), max_size=3)),
    st.builds(lambda t: {"type": t}, st.sampled_from(["set", "slice", "bytes", "typed_array", "value", "field", "expr", "number"])),
)


@st.composite
def events(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["ModelChanged", "ModelChanged", "ModelChanged", "MessageSent", "ColumnDataChanged",
                                 "ColumnsStreamed", "ColumnsPatched", "TitleChanged", "RootAdded", "RootRemoved",
                                 "DocumentPatched", "Nope"]) | json_values)
    event: dict[str, Any] = {"kind": kind}
    # ("live", i, j): the i-th model of the pulled document and its j-th property, filled in at run time.
    target = draw(st.one_of(st.tuples(st.just("live"), st.integers(0, 50), st.integers(0, 200)), ids))
    event["model"] = target if isinstance(target, tuple) else {"id": target}
    if draw(st.booleans()):
        event["attr"] = draw(st.text(max_size=12))
    event["new"] = draw(encoded)
    for key in draw(st.lists(st.sampled_from(["title", "data", "cols", "rollover", "patches", "msg_type", "msg_data",
                                              "setter_id", "hint"]), max_size=3, unique=True)):
        event[key] = draw(encoded)
    return event


def header(msgtype: Any, nbuf: Any = 0, **extra: Any) -> str:
    return json.dumps({"msgid": "fuzz", "msgtype": msgtype, "num_buffers": nbuf, **extra})


frame = st.one_of(
    st.text(max_size=64),
    st.binary(max_size=64),
    st.builds(json.dumps, json_values),
    st.binary(max_size=32).map(InvalidText),
    st.sampled_from([InvalidText(b"\xff\xfe\xfd"), InvalidText(b'{"msgtype": "\xc3\x28"}'), b"\x00" * 8, "", "null",
                     "[]", "{}", '"PATCH-DOC"', "1e999999", "[" * 5000 + "]" * 5000]),
)

raw_frames = st.lists(frame, min_size=1, max_size=5).map(lambda fs: ("raw", fs))

mutated_message = st.builds(
    lambda h, meta, content, tail: ("raw", [h, meta, content, *tail]),
    st.one_of(
        st.builds(lambda t, n: header(t, n), msgtypes, num_buffers),
        st.builds(lambda d: json.dumps(d), st.dictionaries(st.sampled_from(["msgid", "msgtype", "num_buffers", "reqid"]) | st.text(max_size=6), json_values, max_size=5)),
        st.builds(json.dumps, json_values),
    ),
    st.one_of(st.just("{}"), st.builds(json.dumps, json_values), frame),
    st.one_of(st.just("{}"), st.builds(json.dumps, json_values), frame),
    st.lists(frame, max_size=3),
)

patch_doc = st.builds(lambda evs, extra: ("patch", evs, extra),
                      st.lists(events(), min_size=1, max_size=4), st.dictionaries(st.text(max_size=6), json_values, max_size=2))

push_doc = st.builds(lambda doc: ("raw", [header("PUSH-DOC"), "{}", json.dumps({"doc": doc})]),
                     st.one_of(json_values, st.fixed_dictionaries({"roots": st.lists(encoded, max_size=2), "title": json_values})))

lying_buffers = st.builds(
    lambda n, sent: ("raw", [header("PATCH-DOC", n), "{}", json.dumps({"events": []}), *sent]),
    st.sampled_from([1, 2, 3, 10**6, -1]),
    st.lists(st.one_of(st.just('{"id": "b0"}'), st.binary(max_size=16), st.text(max_size=8),
                       st.builds(lambda i: json.dumps({"id": i}), json_values)), max_size=5),
)

huge = st.builds(lambda extra, text: ("huge", MAX_MESSAGE + extra, text), st.sampled_from([1, 10, 4096]), st.booleans())

operations = st.one_of(raw_frames, mutated_message, patch_doc, push_doc, lying_buffers, huge)


def materialize(op: Any, doc: Any) -> list[Any]:
    """Turn an operation into frames, resolving ("live", i, j) against the pulled document."""
    kind = op[0]
    if kind == "raw":
        return list(op[1])
    if kind == "huge":
        size, as_text = op[1], op[2]
        return [header("PATCH-DOC", 1), "{}", json.dumps({"events": []}), json.dumps({"id": "big"}),
                ("x" * size) if as_text else b"\x00" * size]
    models = sorted(doc.models, key=lambda m: m.id)
    evs = []
    for ev in op[1]:
        ev = dict(ev)
        if isinstance(ev.get("model"), tuple):
            _, i, j = ev["model"]
            model = models[i % len(models)]
            props = sorted(model.properties())
            ev["model"] = {"id": model.id}
            ev.setdefault("attr", props[j % len(props)])
        evs.append(ev)
    return [header("PATCH-DOC"), "{}", json.dumps({"events": evs, **op[2]})]


class Campaign:
    def __init__(self, proc: Any, loop: LoopThread) -> None:
        self.proc = proc
        self.url = proc.url.rstrip("/") + "/fuzz"
        self.loop = loop
        self.outcomes: Counter[str] = Counter()
        self.max_log_bytes = 0
        self.examples = 0
        self.sentinel: ProtocolClient | None = None
        self.token: str | None = None

    async def start(self) -> None:
        self.sentinel = ProtocolClient(self.url)
        await self.sentinel.fetch_page()
        await self.sentinel.connect()

    async def new_token(self) -> str:
        tab = ProtocolClient(self.url)
        await tab.fetch_page()
        return tab.token

    async def exercise(self, op: Any) -> str:
        # A session serves ~20 examples (each on its own connection), so sessions churn too.
        if self.token is None or self.examples % 20 == 0:
            self.token = await self.new_token()
        tab = ProtocolClient(self.url, send_ready=False, timeout=5)
        tab.token = self.token
        try:
            await tab.connect()
        except ClosedError as exc:  # the session expired between examples (lifetime 0.5 s)
            assert exc.code == 4404, exc
            tab = ProtocolClient(self.url, send_ready=False, timeout=5)
            tab.token = self.token = await self.new_token()
            await tab.connect()
        assert tab.ws is not None
        frames = materialize(op, tab.document)
        try:
            for f in frames:
                if isinstance(f, InvalidText):
                    await tab.ws.write_message(bytes(f), binary=False)
                else:
                    await tab.ws.write_message(f, binary=isinstance(f, bytes))
        except WebSocketClosedError:
            pass
        # Follow up with a well-formed request: it is answered, or the connection was closed cleanly.
        outcome = "answered"
        try:
            reply = await tab.request(protocol.create("SERVER-INFO-REQ"))
            if reply.msgtype not in ("SERVER-INFO-REPLY", "PULL-DOC-REPLY", "OK", "ERROR"):
                outcome = f"answered {reply.msgtype}"
        except (ClosedError, WebSocketClosedError):
            code, reason = await tab.wait_closed(5)
            if code is not None and 4000 <= code <= 4999:
                assert reason and len(reason) >= 10, f"close {code} without a readable reason"
                outcome = f"closed {code}"
            elif op[0] == "huge" and code in (1009, None):
                # tornado sends 1009 and drops the connection at once, while the rest of the
                # frame is still arriving: the client may see the reset before the close frame.
                outcome = "closed 1009 (too big)" if code == 1009 else "aborted (too big)"
            elif code is None and any(isinstance(f, InvalidText) for f in frames):
                outcome = "aborted (invalid UTF-8)"
            else:
                raise AssertionError(f"connection closed with {code} {reason!r} for {op!r:.300}")
        except asyncio.TimeoutError:
            raise AssertionError(f"no answer and no close within 5 s (a hang) for {op!r:.300}") from None
        finally:
            await tab.close()
        return outcome

    def log_bytes(self) -> int:
        """Bytes the server has logged so far, once its output has been read up to date."""
        size = -1
        while True:
            now = sum(len(line) for line in list(self.proc.output))
            if now == size:
                return now
            size = now
            time.sleep(0.003)

    def example(self, op: Any) -> None:
        before = self.log_bytes()
        outcome = self.loop.call(self.exercise(op))
        self.examples += 1
        self.outcomes[outcome.split(" (")[0]] += 1
        live = self.loop.call(fetch(self.proc.url.rstrip('/') + '/liveness'))
        assert live.code == 200
        spent = self.log_bytes() - before
        self.max_log_bytes = max(self.max_log_bytes, spent)
        assert spent <= 4096, f"{spent} bytes logged for one example: {op!r:.300}"
        if self.examples % 50 == 0:
            self.checkpoint()

    def checkpoint(self) -> None:
        async def check() -> None:
            assert self.sentinel is not None
            t0 = time.monotonic()
            response = await fetch(self.url)
            assert response.code == 200 and time.monotonic() - t0 < 1.0, (response.code, time.monotonic() - t0)
            value = f"sentinel {self.examples}"
            await self.sentinel.set(self.sentinel.find(TextInput)[0], "value", value)
            await self.sentinel.wait_for(lambda: f"echo {value}" in self.sentinel.text(), 5)
        self.loop.call(check())


def server_rss_mb(proc: Any) -> float:
    return float(psutil.Process(proc.proc.pid).memory_info().rss) / 2**20


def live_sessions(proc: Any, loop: LoopThread) -> int:
    response = loop.call(fetch(proc.url.rstrip("/") + "/liveness"))
    return int(json.loads(response.body)["sessions"])


def campaign_run(ks_serve_process: Any, tmp_path: Path, figures: Any, examples: int) -> None:
    script = tmp_path / "fuzz.py"
    script.write_text(FUZZ_APP)
    proc = ks_serve_process(str(script), "--websocket-max-message-size", str(MAX_MESSAGE),
                            "--unused-session-lifetime", "500", "--check-unused-sessions", "200")
    loop = LoopThread()
    campaign = Campaign(proc, loop)
    try:
        loop.call(campaign.start())
        campaign.checkpoint()  # warm-up before the memory baseline
        rss0 = server_rss_mb(proc)
        t0 = time.monotonic()

        @settings(max_examples=examples, derandomize=True, deadline=None, database=None, print_blob=True,
                  suppress_health_check=list(HealthCheck))
        @given(operations)
        def fuzz(op: Any) -> None:
            campaign.example(op)

        fuzz()
        elapsed = time.monotonic() - t0
        campaign.checkpoint()
        rss_growth = server_rss_mb(proc) - rss0
        loop.call(campaign.sentinel.close())  # type: ignore[union-attr]
        assert wait_until(lambda: live_sessions(proc, loop) == 0, 10), "sessions did not return to baseline"
        errors = [line for line in proc.output if "Traceback" in line]
        kinds = Counter(m.group(1) for line in proc.output
                        if (m := re.match(r"^([\w.]+(?:Error|Exception)): ", line)))
    finally:
        loop.stop()
    figures("examples (seconds)", f"{campaign.examples} ({elapsed:.0f} s)")
    figures("outcomes", dict(campaign.outcomes))
    figures("max log bytes per example", campaign.max_log_bytes)
    figures("server RSS growth MB", f"{rss_growth:+.1f}")
    figures("tracebacks logged (exception types)", f"{len(errors)} {dict(kinds)}")
    assert campaign.examples >= examples * 0.9
    assert rss_growth <= 50


def test_protocol_fuzz(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """1,000 hypothesis examples (derandomized): every one closed cleanly or answered; the server unharmed."""
    campaign_run(ks_serve_process, tmp_path, figures, examples=1000)


@pytest.mark.soak
@pytest.mark.timeout(6 * 3600)
def test_protocol_fuzz_soak(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """Soak: 100,000 examples."""
    campaign_run(ks_serve_process, tmp_path, figures, examples=100_000)


def regression_corpus() -> list[tuple[str, Any]]:
    """Fixed cases: the research table (bokeh's behaviour), receiver edge cases, byte mutations."""
    h_patch = header("PATCH-DOC")
    content = json.dumps({"events": [{"kind": "ModelChanged", "model": {"id": "p1"}, "attr": "value", "new": 1}]})
    cases: list[tuple[str, Any]] = [
        ("binary header", ("raw", [b"\x00\x01"])),
        ("header not JSON", ("raw", ["{not json"])),
        ("unknown msgtype", ("raw", [header("EVAL"), "{}", "{}"])),
        ("no msgtype", ("raw", [json.dumps({"msgid": "x"}), "{}", "{}"])),
        ("header is a JSON list", ("raw", ['["PATCH-DOC"]', "{}", "{}"])),
        ("PATCH-DOC to an unknown model", ("raw", [h_patch, "{}", content])),
        ("PUSH-DOC with junk", ("raw", [header("PUSH-DOC"), "{}", '{"doc": 42}'])),
        ("PUSH-DOC of a whole document", ("raw", [header("PUSH-DOC"), "{}", json.dumps({"doc": {"roots": [], "title": "pwned", "version": "3.10.2"}})])),
        ("num_buffers 2 then a text frame", ("raw", [header("PATCH-DOC", 2), "{}", '{"events": []}', "text"])),
        ("num_buffers -1", ("raw", [header("PATCH-DOC", -1), "{}", "{}"])),
        ("num_buffers 10**6", ("raw", [header("PATCH-DOC", 10**6), "{}", "{}"])),
        ("num_buffers a string", ("raw", [header("PATCH-DOC", "2"), "{}", "{}"])),
        ("binary metadata", ("raw", [h_patch, b"{}", "{}"])),
        ("binary content", ("raw", [h_patch, "{}", b"{}"])),
        ("metadata not JSON", ("raw", [h_patch, "{", "{}"])),
        ("content not JSON", ("raw", [h_patch, "{}", "}"])),
        ("buffer header not JSON", ("raw", [header("PATCH-DOC", 1), "{}", '{"events": []}', "{", b"x"])),
        ("buffer header without id", ("raw", [header("PATCH-DOC", 1), "{}", '{"events": []}', "{}", b"x"])),
        ("buffer payload as text", ("raw", [header("PATCH-DOC", 1), "{}", '{"events": []}', '{"id": "b"}', "x"])),
        ("buffer header as binary", ("raw", [header("PATCH-DOC", 1), "{}", '{"events": []}', b'{"id": "b"}', b"x"])),
        ("events not a list", ("raw", [h_patch, "{}", '{"events": 5}'])),
        ("content without events", ("raw", [h_patch, "{}", "{}"])),
        ("event without kind", ("raw", [h_patch, "{}", '{"events": [{}]}'])),
        ("reference to a buffer that was never sent", ("raw", [h_patch, "{}", json.dumps({"events": [{"kind": "ModelChanged", "model": {"id": "p1"}, "attr": "value", "new": {"type": "ndarray", "array": {"id": "nope"}, "shape": [1], "dtype": "float64", "order": "little"}}]})])),
        ("client sends a server reply type", ("raw", [header("PULL-DOC-REPLY"), "{}", "{}"])),
        ("ACK/OK/ERROR from a client", ("raw", [header("ACK"), "{}", "{}", header("OK"), "{}", "{}", header("ERROR"), "{}", '{"text": "x"}'])),
        ("deeply nested JSON", ("raw", [h_patch, "{}", "[" * 100000 + "]" * 100000])),
        ("a float beyond range", ("raw", ['{"msgid": 1e999, "msgtype": "PULL-DOC-REQ"}', "{}", "{}"])),
        ("invalid UTF-8 header", ("raw", [InvalidText(b'{"msgtype": "PULL-DOC-REQ\xff"}'), "{}", "{}"])),
        ("empty frames", ("raw", ["", "", ""])),
        ("NUL bytes in a header", ("raw", ['{"msgtype": "PULL\\u0000-DOC-REQ"}', "{}", "{}"])),
        ("frame just over the size limit", ("huge", MAX_MESSAGE + 1, False)),
        ("text frame over the size limit", ("huge", MAX_MESSAGE + 1, True)),
    ]
    valid = {"PATCH-DOC": [h_patch, "{}", content], "PULL-DOC-REQ": [header("PULL-DOC-REQ"), "{}", "{}"],
             "SERVER-INFO-REQ": [header("SERVER-INFO-REQ"), "{}", "{}"]}
    for name, frames in valid.items():
        for i, f in enumerate(frames):
            for cut in sorted({1, 2, len(f) // 3, len(f) // 2, len(f) - 2, len(f) - 1}):
                if 0 < cut < len(f):
                    cases.append((f"{name} frame {i} cut at {cut}", ("raw", [*frames[:i], f[:cut], *frames[i + 1:]])))
            for pos in sorted({0, 1, len(f) // 2, len(f) - 1}):
                for ch in ('"', "}", "\\", "\u00e9"):
                    mutated = f[:pos] + ch + f[pos + 1:]
                    if mutated != f:
                        cases.append((f"{name} frame {i} [{pos}]={ch!r}", ("raw", [*frames[:i], mutated, *frames[i + 1:]])))
    return cases


def test_protocol_regression_corpus(ks_serve_process: Any, tmp_path: Path, figures: Any) -> None:
    """>= 150 fixed hostile inputs, each on its own connection: answered or closed cleanly; server unharmed."""
    cases = regression_corpus()
    script = tmp_path / "fuzz.py"
    script.write_text(FUZZ_APP)
    proc = ks_serve_process(str(script), "--websocket-max-message-size", str(MAX_MESSAGE),
                            "--unused-session-lifetime", "500", "--check-unused-sessions", "200")
    loop = LoopThread()
    campaign = Campaign(proc, loop)
    try:
        loop.call(campaign.start())
        for name, op in cases:
            try:
                campaign.example(op)
            except AssertionError as exc:
                raise AssertionError(f"corpus case {name!r}: {exc}") from None
        campaign.checkpoint()
        loop.call(campaign.sentinel.close())  # type: ignore[union-attr]
        assert wait_until(lambda: live_sessions(proc, loop) == 0, 10)
    finally:
        loop.stop()
    figures("corpus cases", len(cases))
    figures("corpus outcomes", dict(campaign.outcomes))
    assert len(cases) >= 150
