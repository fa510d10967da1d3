"""ks.state.location in an app the Jupyter extension serves: the Document lives in a kernel, the same sync works."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bokeh.models import TextInput
from jupyter_helpers import server_config

from kernelstate.location import MODEL_NAME
from kernelstate.testing.client import ProtocolClient

SEARCH = '''"""Search"""
import kernelstate as ks

box = ks.widgets.TextInput(name="Search")
ks.state.location.sync(box, {"value": "q"})
box.servable()
'''


@pytest.fixture
def jp_server_config() -> Any:
    return server_config(kernel_pool_size=1)


async def test_location_sync_in_a_kernel_hosted_app(ks_ext: Any, jp_root_dir: Path, jp_serverapp: Any,
                                                    jp_auth_header: dict[str, str], jp_http_port: int) -> None:
    """?q= sets the widget in the kernel; widget changes reach the location model; the model's value sets the widget."""
    (jp_root_dir / "search.py").write_text(SEARCH)
    url = f"http://localhost:{jp_http_port}{jp_serverapp.base_url}kernelstate/apps/search.py?q=kernel"
    async with ProtocolClient(url, headers=jp_auth_header, timeout=60) as tab:
        box = next(m for m in tab.find(TextInput) if m.title == "Search")
        location = tab.find(TextInput, name=MODEL_NAME)[0]
        assert box.value == "kernel" and json.loads(location.value) == {"q": ["kernel"]}
        await tab.set(box, "value", "typed")
        await tab.wait_for(lambda: json.loads(location.value) == {"q": ["typed"]})
        await tab.set(location, "value", json.dumps({"q": ["went back"]}))
        await tab.wait_for(lambda: box.value == "went back")
