"""Work across processes: cluster-wide tasks, a shared cache, publish/subscribe, offload to Dask.

One process-wide :class:`~kernelstate.cluster.coordinator.Coordinator` decides
how ``ks.state`` reaches other processes. It is built from the session store's
URL (``kernelstate serve --session-store URL``, ``ks.config.session_store``,
or the ``KERNELSTATE_SESSION_STORE`` environment variable, the only place a
password may appear):

- no URL (the default): the process is alone, and everything behaves exactly
  as on one process (:class:`~kernelstate.cluster.coordinator.LocalCoordinator`);
- ``redis://host:port/db``: a Redis server shared by every process
  (:class:`~kernelstate.cluster.redis_coordinator.RedisCoordinator`);
- ``sqlite:///ABSOLUTE/PATH``: the processes of this machine only, through one
  SQLite file and no server (:class:`~kernelstate.cluster.machine.MachineCoordinator`;
  what ``--num-procs`` uses without a store, see :func:`~kernelstate.cluster.machine.default_url`).

Modules: ``coordinator`` (the abstraction, the local default, the URL),
``redis_coordinator``, ``machine``, ``signing`` (HMAC-signed values: nothing read back from
the store is trusted unsigned), ``topics`` (publish/subscribe), ``shared_cache``
(``as_cached(..., shared=True)``), ``offload`` and ``cancellation``
(``ks.state.execute(fn, schedule=client)`` and ``ks.cancellation()``).
"""
from __future__ import annotations

from .coordinator import Coordinator, LocalCoordinator, configure, coordinator

__all__ = ["Coordinator", "LocalCoordinator", "configure", "coordinator"]
