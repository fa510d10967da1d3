"""The floor: the least work a Tornado server can do for the same traffic.

``GET /<name>`` answers a fixed HTML page about the size of a served app's page
with a Bokeh-style ``render_items`` token in it. ``/<name>/ws`` accepts the
``bokeh, <token>`` subprotocol handshake, sends ACK, answers PULL-DOC-REQ
with a canned document (Slider, Button, Div) and answers every PATCH-DOC
with OK plus a PATCH-DOC carrying ``value=<v>;clicks=<n>;``, which is the
wire behaviour of the benchmark apps with no document model behind it.

Each message is three frames (header, metadata, content) as Bokeh sends them;
TCP_NODELAY is on unless ``--no-nodelay`` is given (tornado's default is off).

    python bench/floor.py --port 5006 [--size 9000] [--no-nodelay]
"""
from __future__ import annotations

import argparse
import itertools
import json
import secrets
from typing import Any

from tornado import ioloop, web, websocket

_ids = itertools.count(1)

DOCUMENT = {
    "doc": {
        "version": "3.10.2",
        "title": "floor",
        "roots": [
            {
                "type": "object", "name": "Column", "id": "c1",
                "attributes": {"children": [
                    {"type": "object", "name": "Slider", "id": "s1",
                     "attributes": {"value": 0, "start": 0, "end": 100000}},
                    {"type": "object", "name": "Button", "id": "b1", "attributes": {"label": "Click me"}},
                    {"type": "object", "name": "Div", "id": "d1", "attributes": {"text": "value=0;clicks=0;"}},
                ]},
            }
        ],
    }
}


def frames(msgtype: str, content: dict[str, Any], reqid: str | None = None) -> list[str]:
    header: dict[str, Any] = {"msgid": f"floor{next(_ids)}", "msgtype": msgtype}
    if reqid is not None:
        header["reqid"] = reqid
    return [json.dumps(header), "{}", json.dumps(content)]


def page(size: int) -> bytes:
    """A fixed HTML page of ``size`` bytes with one render item and a token."""
    token = secrets.token_urlsafe(180)
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>floor</title></head><body>'
        '<script type="text/javascript">const render_items = [{"token":"%s","roots":{},"root_ids":[]}];'
        "</script>\n" % token
    )
    tail = "</body></html>\n"
    pad = max(0, size - len(head) - len(tail) - 7)
    return (head + "<!--" + "x" * pad + "-->" + tail).encode()


class PageHandler(web.RequestHandler):
    def initialize(self, body: bytes) -> None:
        self.body = body

    def get(self, name: str) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(self.body)


class SocketHandler(websocket.WebSocketHandler):
    def initialize(self, nodelay: bool) -> None:
        self.nodelay = nodelay
        self.parts: list[str] = []
        self.value: Any = 0
        self.clicks = 0

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return subprotocols[0] if len(subprotocols) == 2 else None

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self, name: str) -> None:
        self.set_nodelay(self.nodelay)
        self.send(frames("ACK", {}))

    def send(self, parts: list[str]) -> None:
        for part in parts:
            self.write_message(part)

    def on_message(self, frame: str | bytes) -> None:
        self.parts.append(frame if isinstance(frame, str) else frame.decode())
        if len(self.parts) < 3:
            return
        header, _, content = (json.loads(p) for p in self.parts)
        self.parts = []
        if header.get("msgtype") == "PULL-DOC-REQ":
            self.send(frames("PULL-DOC-REPLY", DOCUMENT, header["msgid"]))
        elif header.get("msgtype") == "PATCH-DOC":
            self.send(frames("OK", {}, header["msgid"]))
            for event in content.get("events", []):
                if event.get("kind") == "ModelChanged" and event.get("attr") == "value":
                    self.value = event["new"]
                elif event.get("kind") == "MessageSent":
                    self.clicks += 1
            text = f"value={self.value};clicks={self.clicks};"
            patch = {"events": [{"kind": "ModelChanged", "model": {"id": "d1"}, "attr": "text", "new": text}]}
            self.send(frames("PATCH-DOC", patch))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--size", type=int, default=9000, help="page size in bytes")
    ap.add_argument("--no-nodelay", action="store_true", help="leave Nagle's algorithm on (tornado's default)")
    args = ap.parse_args()
    app = web.Application([
        (r"/([^/]+)/ws", SocketHandler, {"nodelay": not args.no_nodelay}),
        (r"/([^/]+)", PageHandler, {"body": page(args.size)}),
    ])
    app.listen(args.port, address=args.address)
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
