"""An app whose page does not depend on the request, so the reuse cache keeps it.

It records when its code runs (a file in ``$KS_HOSTS_MARKS``), so the test can
tell that a cached page's session starts only when its WebSocket connects.
"""
import os
from pathlib import Path

import kernelstate as ks

(Path(os.environ["KS_HOSTS_MARKS"]) / f"{ks.state.session_id}.ran").write_text("1")
ks.pane.Str(f"rendered for {ks.state.session_id}").servable()
