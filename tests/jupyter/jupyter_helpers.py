"""Helpers for the Jupyter tests: drive a kernel like a notebook frontend, read kernelstate outputs."""
from __future__ import annotations

import ast
import asyncio
import json
from typing import Any


from kernelstate.jupyter.relay import own_session
from kernelstate.jupyter.wire import MIME_TYPE
from kernelstate.testing.jupyter import server_config  # noqa: F401  (re-exported for the tests here)


class KernelDriver:
    """A notebook frontend's view of one kernel: run cells, read their outputs."""

    def __init__(self, kernel_id: str, km: Any) -> None:
        self.kernel_id = kernel_id
        self.client = km.client(session=own_session(km.session))
        self.client.start_channels()

    async def ready(self) -> KernelDriver:
        await self.client.wait_for_ready(timeout=60)
        return self

    async def run(self, code: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Execute a cell; returns its iopub outputs; raises on an error output."""
        outputs: list[dict[str, Any]] = []
        msg_id = self.client.execute(code, store_history=False)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            msg = await self.client.get_iopub_msg(timeout=max(remaining, 0.1))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            if msg["msg_type"] in ("execute_result", "display_data", "stream", "error"):
                outputs.append(msg)
        errors = [m for m in outputs if m["msg_type"] == "error"]
        if errors:
            raise AssertionError("cell failed: " + "\n".join(errors[0]["content"]["traceback"]))
        return outputs

    async def run_cell(self, code: str, cell_id: str) -> list[dict[str, Any]]:
        """Execute with JupyterLab's cellId metadata (what re-running a cell sends)."""
        msg = self.client.session.msg("execute_request", {
            "code": code, "silent": False, "store_history": False, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})
        msg["metadata"]["cellId"] = cell_id
        self.client.shell_channel.send(msg)
        msg_id = msg["header"]["msg_id"]
        outputs: list[dict[str, Any]] = []
        while True:
            m = await self.client.get_iopub_msg(timeout=60)
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                return outputs
            if m["msg_type"] == "error":
                raise AssertionError("cell failed: " + "\n".join(m["content"]["traceback"]))
            if m["msg_type"] in ("execute_result", "display_data"):
                outputs.append(m)

    async def value(self, expr: str) -> Any:
        """Evaluate a JSON-able expression in the kernel (a user expression, no output)."""
        msg_id = self.client.execute("", silent=True, store_history=False,
                                     user_expressions={"v": f"__import__('json').dumps({expr})"})
        while True:
            reply = await self.client.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        result = reply["content"]["user_expressions"]["v"]
        if result.get("status") != "ok":
            raise AssertionError(f"{expr!r} failed in the kernel: {result.get('ename')}: {result.get('evalue')}")
        return json.loads(ast.literal_eval(result["data"]["text/plain"]))

    def stop(self) -> None:
        self.client.stop_channels()


def doc_output(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The kernelstate document reference in a cell's outputs."""
    for msg in outputs:
        data = msg["content"].get("data", {})
        if MIME_TYPE in data:
            return dict(data[MIME_TYPE])
    raise AssertionError(f"no {MIME_TYPE} output in {[m['msg_type'] for m in outputs]}")
