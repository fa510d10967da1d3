"""The session store's parts on their own: the SQLite engine, signed records, URLs, the key file, ``saved``."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import TextInput

import kernelstate as ks
from kernelstate.context import activate
from kernelstate.errors import ConfigError
from kernelstate.saved import SavedState
from kernelstate.server.options import ServeOptions
from kernelstate.session import Session
from kernelstate.store import (
    RecordSigner,
    SessionRecord,
    TamperedRecordError,
    check_store_url,
    record_key,
    store_secret,
)
from kernelstate.store.sqlite import SQLiteStore
from kernelstate.store.tree import apply_values, collect_values
from kernelstate.store.urls import redacted, store_key_path
from kernelstate.testing import ProtocolClient


def test_sqlite_store_is_shared_by_connections_and_expires(tmp_path: Path) -> None:
    """Two connections to one file (two processes) see each other's records; expired records are gone."""
    path = tmp_path / "s.sqlite"
    one, two = SQLiteStore(path), SQLiteStore(path)
    one.put("a", b"1", 60)
    one.put("short", b"2", 0.05)
    assert two.get("a") == b"1"
    assert os.stat(path).st_mode & 0o077 == 0
    time.sleep(0.1)
    assert two.get("short") is None
    assert two.touch(["a", "short", "never"], 60) == {"short", "never"}
    two.delete("a")
    assert one.get("a") is None
    one.close()
    two.close()


def test_records_are_signed_and_bound_to_their_session() -> None:
    """A changed byte, another session's record or another key: refused, never parsed into a record."""
    signer = RecordSigner(b"k" * 32)
    record = SessionRecord("sid-1", "/app", "v1", "/app", {"q": ["x"]}, [["0:Slider", "value", 3]], {"a": 1})
    data = signer.encode(record)
    assert signer.decode(data, "sid-1") == record
    with pytest.raises(TamperedRecordError, match="bad signature"):
        signer.decode(data.replace(b'"value",3]', b'"value",4]'), "sid-1")
    with pytest.raises(TamperedRecordError, match="another session"):
        signer.decode(data, "sid-2")
    with pytest.raises(TamperedRecordError):
        RecordSigner(b"j" * 32).decode(data, "sid-1")


def test_store_urls_keep_passwords_out_of_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """A password in --session-store is refused (it belongs in KERNELSTATE_SESSION_STORE); logs never show it."""
    assert check_store_url("redis://127.0.0.1:6379/0", from_argv=True)
    with pytest.raises(ConfigError, match="KERNELSTATE_SESSION_STORE"):
        check_store_url("redis://:secret@127.0.0.1:6379/0", from_argv=True)
    with pytest.raises(ConfigError, match="unknown session store"):
        check_store_url("memcached://x")
    assert redacted("redis://:secret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    monkeypatch.setenv("KERNELSTATE_SESSION_STORE", "redis://:secret@127.0.0.1:6379/0")
    assert ServeOptions(session_store="local").session_store_url == "redis://:secret@127.0.0.1:6379/0"


def test_key_file_is_owner_only_and_stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without KERNELSTATE_SECRET_KEY the key lives beside the store, owner-only, the same on every start."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first = store_secret(url)
    assert store_secret(url) == first and len(first) >= 32
    assert store_key_path(url) == tmp_path / "db.key"
    assert os.stat(tmp_path / "db.key").st_mode & 0o077 == 0


def test_saved_takes_json_only() -> None:
    """ks.state.saved refuses values a JSON record cannot hold, and tells its listener about changes."""
    saved = SavedState()
    seen: list[int] = []
    saved.listen(lambda: seen.append(len(saved)))
    saved["filters"] = {"year": [2020, 2021]}
    with pytest.raises(TypeError, match="must be JSON"):
        saved["when"] = object()
    del saved["filters"]
    assert seen == [1, 0] and saved.to_json() == {}


def _page(session: Session) -> tuple[Any, Any, list[int]]:
    """An app's page in ``session``: a slider whose watcher logs, a text box and an upload in a Column."""
    slider, upload = ks.widgets.IntSlider(name="n", start=0, end=10, value=1), ks.widgets.FileInput()
    seen: list[int] = []
    slider.param.watch(lambda e: seen.append(e.new), "value")
    assert session.document is not None
    with activate(session):
        session.document.add_root(ks.Column(slider, ks.widgets.TextInput(name="t"), upload).get_model(session.document, session))
    return slider, upload, seen


def test_values_are_recorded_by_position_and_restored_as_browser_changes() -> None:
    """Recorded under tree paths (not Bokeh ids), restored through the component (watchers run); uploads are not kept."""
    old, new = Session(), Session()
    slider, upload, _ = _page(old)
    slider.value = 7
    values, skipped = collect_values(old)
    identities = {f"{identity}.{prop}" for identity, prop, _ in values}
    assert "0/children.0:Slider.value" in identities and "0/children.1:TextInput.value" in identities
    assert not any("FileInput" in i for i in identities) and skipped == []
    restored_slider, _, seen = _page(new)
    values.append(["0/children.5:Slider", "value", 3])   # no longer there: dropped
    values.append(["0/children.0:Slider", "value", 99])  # out of bounds: the component refuses it
    restored, dropped = apply_values(new, values)
    assert restored_slider.value == 7 and seen == [7]
    assert dropped == ["0/children.5:Slider.value", "0/children.0:Slider.value"] and restored == len(values) - 2


def test_records_follow_a_changing_document(tmp_path: Path) -> None:
    """A widget the app adds later is in the next record, with its value; the record is signed with the server's key."""
    def app() -> Any:
        layout = ks.Column(ks.widgets.Button(name="add"))
        layout[0].on_click(lambda event: layout.append(ks.widgets.TextInput(name="new", value="added")))
        return layout

    path = tmp_path / "sessions.sqlite"
    server = ks.serve(app, threaded=True, session_store=f"sqlite:///{path}", secret_key="k" * 40)
    try:
        async def main() -> str:
            async with ProtocolClient(server.url.rstrip("/") + server.apps[0].route, timeout=10) as tab:
                await tab.click(tab.find(label="add")[0])
                await tab.wait_for(lambda: bool(tab.find(TextInput)))
                await asyncio.sleep(0.6)
                return tab.session_id

        session_id = asyncio.run(main())
        data = SQLiteStore(path).get(record_key(session_id))
        assert data is not None
        record = RecordSigner(server.signer.key).decode(data, session_id)
        assert ["0/children.1:TextInput", "value", "added"] in record.values
    finally:
        server.stop()
        # The server made its --session-store this process's coordinator (tasks, publish): end that here.
        ks.config.set("session_store", None, process=True)
