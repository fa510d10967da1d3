"""The web layer both hosts share: pages, tokens, origins, sessions and the session WebSocket.

The standalone server (:mod:`kernelstate.server`) and the Jupyter extension
(:mod:`kernelstate.jupyter`) build on this package and differ only in how they
authenticate, where they listen and where a session's Document lives (the
:class:`~kernelstate.host.DocumentHost` seam). Nothing here imports either host.
"""
