"""The benchmark harness keeps working: a few seconds of it against kernelstate.

Only the shape of the results is checked (numbers present, every request
answered); timings are never asserted here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run.py"

pytestmark = pytest.mark.timeout(30)


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def test_quick_setup_and_roundtrip_write_numbers(tmp_path: Path) -> None:
    """`bench/run.py --quick --only setup,roundtrip` writes a JSON with numbers for kernelstate."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--only", "setup,roundtrip", "--targets", "kernelstate,floor",
         "--out", str(out), "--no-readme"],
        capture_output=True, text=True, timeout=28, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    runs = {(r["scenario"], r["target"]): r["result"] for r in results["runs"]}
    assert set(runs) == {("setup", "kernelstate"), ("setup", "floor"),
                         ("roundtrip", "kernelstate"), ("roundtrip", "floor")}

    setup = runs[("setup", "kernelstate")]
    assert setup["found_slider"] and setup["found_button"], setup
    for clients in ("clients1", "clients8"):
        phase = setup[clients]
        assert phase["errors"] == 0, phase["error_samples"]
        assert phase["total_ms"]["n"] > 0
        assert all(_number(phase[k]["p50"]) for k in ("total_ms", "get_ms", "ws_ack_ms", "pull_ms"))
        assert _number(phase["sessions_per_s"]) and _number(phase["server_cpu_ms_per_session"])

    roundtrip = runs[("roundtrip", "kernelstate")]
    for sessions in ("sessions1", "sessions8"):
        for kind in ("slider", "button"):
            entry = roundtrip[sessions][kind]
            assert entry["error"] is None, entry["error"]
            assert entry["rtt_ms"]["n"] > 0 and _number(entry["rtt_ms"]["p95"])


def test_quick_stream_reports_bytes_and_cpu_per_update(tmp_path: Path) -> None:
    """`bench/run.py --quick --only stream` measures a streamed kernelstate DataTable, per update."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--only", "stream", "--targets", "kernelstate",
         "--out", str(out), "--no-readme"],
        capture_output=True, text=True, timeout=28, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = json.loads(out.read_text())["runs"]
    result = run["result"]
    assert (run["scenario"], run["target"]) == ("stream", "kernelstate")
    assert result["errors"] == 0, result["error_samples"]
    assert result["sessions"] > 0 and result["updates"] > 0 and result["stream_messages"] > 0, result
    # the first document carries the 10,000 rows; an update is a stream patch of 100 rows, not a reload
    assert result["doc_bytes"] > 100_000, result["doc_bytes"]
    assert 0 < result["stream_message_bytes"]["max"] < 20_000, result["stream_message_bytes"]
    assert _number(result["bytes_per_update"]) and _number(result["server_cpu_ms_per_update"])
