"""Clients from chosen loopback addresses (all of 127.0.0.0/8 reaches the server on Linux), so a
test can play several client addresses: an attacker on some, a legitimate visitor on another."""
from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlsplit


class KeepAliveClient:
    """Plain HTTP/1.1 GETs, one after another on one keep-alive connection from ``source_ip``."""

    def __init__(self, url: str, source_ip: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.netloc = parts.netloc
        self.source_ip = source_ip
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 20.0) -> tuple[int, bytes]:
        """(status, body); reconnects if the server closed the connection."""
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(
                self.host, self.port, local_addr=(self.source_ip, 0)), timeout)
        assert self._reader is not None and self._writer is not None
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.netloc}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await asyncio.wait_for(self._reader.readexactly(length), timeout)
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = None


async def get_from(url: str, source_ip: str, timeout: float = 20.0) -> tuple[int, bytes]:
    """One GET of ``url`` from ``source_ip`` on a new connection."""
    client = KeepAliveClient(url, source_ip)
    parts = urlsplit(url)
    try:
        return await client.get(parts.path + (f"?{parts.query}" if parts.query else ""), timeout=timeout)
    finally:
        await client.close()


def open_idle(url: str, source_ip: str, count: int, connect_timeout: float = 0.3,
              give_up_after: int = 5) -> list[socket.socket]:
    """Open up to ``count`` connections from ``source_ip`` that never send a byte; stop after
    ``give_up_after`` connects in a row fail (the server's backlog is full)."""
    parts = urlsplit(url)
    held: list[socket.socket] = []
    failures = 0
    while len(held) < count and failures < give_up_after:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(connect_timeout)
        try:
            sock.bind((source_ip, 0))
            sock.connect((parts.hostname, parts.port))
        except OSError:
            sock.close()
            failures += 1
            continue
        failures = 0
        held.append(sock)
    return held


def is_open(sock: socket.socket) -> bool:
    """Whether the server has not closed ``sock`` (checked without blocking)."""
    try:
        sock.setblocking(False)
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def wait_closed(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closed ``sock`` (None if it did not within ``timeout``)."""
    t0 = time.monotonic()
    sock.settimeout(timeout)
    try:
        while True:
            if sock.recv(4096) == b"":
                return time.monotonic() - t0
    except TimeoutError:
        return None
    except OSError:
        return time.monotonic() - t0
