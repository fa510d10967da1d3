"""Session store and recovery: a session outlives the process that held it.

See :mod:`kernelstate.store.recovery` for the model (imported on its own: it
needs Bokeh, which the CLI's argument parsing does not load),
:mod:`kernelstate.store.urls` for ``--session-store`` values and
:mod:`kernelstate.store.records` for what is stored.
"""
from __future__ import annotations

from .base import SessionStore, StoreError, StoreUnavailableError, TamperedRecordError
from .records import RecordSigner, SessionRecord, record_key
from .urls import check_store_url, open_store, store_secret

__all__ = ["RecordSigner", "SessionRecord", "SessionStore", "StoreError", "StoreUnavailableError",
           "TamperedRecordError", "check_store_url", "open_store", "record_key", "store_secret"]
