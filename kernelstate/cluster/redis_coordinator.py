"""RedisCoordinator: cluster-wide tasks, publish/subscribe and the shared cache through one Redis server.

- **Tasks**: each occurrence of a named task is claimed with ``SET key NX EX``
  on ``ks:task:<name>:<fire time in ms>``; the process whose SET succeeds runs
  it. There is no lease holder: when a process dies, the others keep claiming
  (and running) the next occurrences. Claims are made on a pool thread, never
  on the event loop.
- **Publish/subscribe**: ``PUBLISH ks:topic:<topic>`` with a signed value, sent
  in call order from one sender thread (the value is checked in the caller); one
  daemon thread per process listens on ``ks:topic:*`` (started by the first
  ``subscribe``) and hands each message to this process's subscribers.
- **Shared cache**: the value lives at ``ks:cache:<sha256 of the key>``, signed;
  a missing value is computed under a Redis lock, so one process computes it
  and the others wait and read it.

An outage never crashes anything: the first failure logs one error line that
says what degrades (tasks run in every process, messages reach this process
only, cached values are computed locally) and the first success after it logs
that coordination resumed. Every Redis call has a two-second timeout. A shared
cache lookup is synchronous, like ``as_cached`` itself: a process waiting for
another to compute a value waits with it (at most ``LOCK_S``).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from redis.exceptions import LockError, RedisError

from .coordinator import ENV_SECRET, Coordinator, check_store, redacted
from .errors import TamperedValueError
from .shared_cache import MISSING, cache_name, decoded, max_value_bytes
from .signing import Codec
from .topics import deliver

__all__ = ["RedisCoordinator", "cache_name"]

log = logging.getLogger("kernelstate.cluster")
TOPIC_PREFIX = "ks:topic:"
TIMEOUT_S = 2.0
LOCK_S = 120.0            # a shared computation holding the lock longer lets a second process start it
DEFAULT_CACHE_TTL_S = 86400.0


class _Health:
    """One log line when Redis becomes unreachable, one when it is back."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.down = False
        self._lock = threading.Lock()

    def failed(self, what: str, exc: BaseException) -> None:
        with self._lock:
            if self.down:
                return
            self.down = True
        log.error("the Redis session store %s is unreachable (%s while %s: %s); until it is back, named tasks run "
                  "in every process, published messages reach this process only and shared cached values are "
                  "computed here; retrying", self.label, type(exc).__name__, what, exc)

    def ok(self) -> None:
        if not self.down:
            return
        with self._lock:
            if not self.down:
                return
            self.down = False
        log.warning("the Redis session store %s is reachable again: cluster-wide tasks, publish and the shared "
                    "cache are coordinated again", self.label)


class RedisCoordinator(Coordinator):
    """Coordination through the Redis server at ``url``; values signed with ``secret``."""

    shared = True

    def __init__(self, url: str, secret: str | None) -> None:
        check_store(url, secret)
        key = secret or os.environ[ENV_SECRET]
        self.url = url
        self.label = redacted(url)
        self.redis = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
        self.codec = Codec(key.encode("utf-8"))
        self.health = _Health(self.label)
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()
        self._stop = threading.Event()
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="kernelstate-redis-publish")

    # -- tasks ------------------------------------------------------------------------
    def claim(self, name: str, fire_time: dt.datetime, expiry_s: float) -> bool:
        key = f"ks:task:{name}:{round(fire_time.timestamp() * 1000)}"
        try:
            won = self.redis.set(key, self.me, nx=True, ex=max(1, round(expiry_s)))
        except RedisError as exc:
            self.health.failed(f"claiming task {name!r}", exc)
            return True
        self.health.ok()
        return bool(won)

    # -- publish/subscribe ------------------------------------------------------------
    def publish(self, topic: str, value: Any) -> None:
        blob = self.codec.dumps(f"topic:{topic}", value, max_value_bytes())   # a bad value raises here, in the caller
        # Sent from one thread, in call order: a slow or unreachable store never stalls the caller's loop.
        self._sender.submit(self._send, topic, value, blob)

    def _send(self, topic: str, value: Any, blob: bytes) -> None:
        try:
            self.redis.publish(TOPIC_PREFIX + topic, blob)
        except RedisError as exc:
            self.health.failed(f"publishing to topic {topic!r}", exc)
            deliver(topic, value)
            return
        except Exception:
            log.exception("publishing to topic %r failed", topic)
            return
        self.health.ok()

    def listen(self) -> None:
        with self._lock:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="kernelstate-redis-pubsub", daemon=True)
                self._listener.start()
        # A message published right after subscribe() returns must reach us: wait for the subscription.
        self._listening.wait(TIMEOUT_S)

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = self.redis.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.psubscribe(TOPIC_PREFIX + "*")
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        self._listening.set()
                        self.health.ok()
                    elif message["type"] == "pmessage":
                        self._received(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                self._listening.set()  # never keep a subscribe() waiting on an outage
                self.health.failed("listening for published messages", exc)
                self._stop.wait(1.0)
            except Exception:   # never let the one listener thread die
                log.exception("the Redis message listener failed; it starts again in 1 s")
                self._stop.wait(1.0)
            finally:
                try:
                    pubsub.close()
                except (RedisError, OSError):
                    pass

    def _received(self, channel: bytes, data: bytes) -> None:
        topic = channel.decode("utf-8", "replace")[len(TOPIC_PREFIX):]
        try:
            value = self.codec.loads(f"topic:{topic}", data)
        except TamperedValueError as exc:
            log.warning("a message on topic %r was refused: %s", topic, exc)
            return
        deliver(topic, value)

    # -- shared cache -----------------------------------------------------------------
    def cached(self, key: Any, compute: Callable[[], Any], ttl: float | None) -> Any:
        name = cache_name(key)
        purpose = f"cache:{name}"
        expiry = max(1, round(ttl if ttl is not None else DEFAULT_CACHE_TTL_S))
        try:
            hit = self._read(name, purpose)
            if hit is not MISSING:
                return hit
            lock = self.redis.lock("ks:lock:" + name[len("ks:cache:"):], timeout=LOCK_S, blocking_timeout=LOCK_S)
            acquired = lock.acquire()
        except RedisError as exc:
            self.health.failed("reading the shared cache", exc)
            return compute()
        if not acquired:
            log.warning("shared cache %s: another process held its lock for %.0f s; computing it here too", name, LOCK_S)
        try:
            if acquired:
                try:
                    hit = self._read(name, purpose)  # computed by another process while we waited
                except RedisError as exc:
                    self.health.failed("reading the shared cache", exc)
                    hit = MISSING
                if hit is not MISSING:
                    return hit
            value = compute()
            blob = self.codec.dumps(purpose, value, max_value_bytes())
            try:
                self.redis.set(name, blob, ex=expiry)
            except RedisError as exc:
                self.health.failed("writing the shared cache", exc)
            return value
        finally:
            if acquired:
                try:
                    lock.release()
                except (LockError, RedisError):
                    pass

    def _read(self, name: str, purpose: str) -> Any:
        blob = self.redis.get(name)
        self.health.ok()
        return decoded(self.codec, name, purpose, blob if isinstance(blob, bytes) else None)

    def close(self) -> None:
        self._stop.set()
        self._sender.shutdown(wait=True)
        if self._listener is not None:
            self._listener.join(TIMEOUT_S + 1)
        self.redis.close()

