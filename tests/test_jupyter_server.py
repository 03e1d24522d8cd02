"""Every notebook opens in a real Jupyter server, the way JupyterLab opens it, and gets a working kernel.

A server is started on 127.0.0.1 (a free port, a random token, no browser) with the repository as its root.
Each ``notebooks/*.ipynb`` is read through the contents API (what JupyterLab does when you double-click it),
a session with a ``python3`` kernel is created for it, and ``1 + 1`` is executed over the kernel's websocket.
A notebook JupyterLab cannot open (bad JSON, invalid nbformat, unknown kernel) fails here. Loopback only.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hw4lib import paths

ROOT = paths.repo_root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
START_TIMEOUT = 60.0
KERNEL_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.ws_base = f"ws://127.0.0.1:{port}"
        self.token = token

    def request(
        self, method: str, path: str, body: dict | None = None, timeout: float = 30.0
    ) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else {})
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except json.JSONDecodeError:
                return err.code, {"message": raw.decode(errors="replace")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port, token = _free_port(), secrets.token_hex(16)
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_CONFIG_DIR": str(tmp_path_factory.mktemp("jupyter-config")),  # no user config leaks in
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    log = (runtime / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter_server",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
            f"--ServerApp.root_dir={ROOT}", "--ServerApp.allow_remote_access=False",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),  # CI containers
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
    )  # fmt: skip
    srv = Server(port, token)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                output = (runtime / "server.log").read_text()
                pytest.fail(f"jupyter server exited with {proc.returncode}:\n{output}")
            try:
                status, _ = srv.request("GET", "/api/status", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter server did not answer in {START_TIMEOUT:.0f} s")
            time.sleep(0.25)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _execute(server: Server, kernel_id: str, code: str) -> str:
    """Run ``code`` on the kernel through its websocket channel; return the ``text/plain`` result."""
    import websocket  # websocket-client, a dependency of jupyter_server

    ws = websocket.create_connection(
        f"{server.ws_base}/api/kernels/{kernel_id}/channels?token={server.token}",
        timeout=KERNEL_TIMEOUT,
    )
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))  # fmt: skip
        result, status = None, None
        deadline = time.monotonic() + KERNEL_TIMEOUT
        while time.monotonic() < deadline and (result is None or status is None):
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "execute_result":
                result = msg["content"]["data"]["text/plain"]
            elif kind == "error":
                raise AssertionError(f"kernel error: {msg['content']['ename']}: {msg['content']['evalue']}")
            elif kind == "execute_reply":
                status = msg["content"]["status"]
        assert status == "ok", f"execute_reply status {status!r}"
        return result
    finally:
        ws.close()


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks in {ROOT / 'notebooks'}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_opens_and_gets_a_kernel(server: Server, notebook: Path) -> None:
    rel = notebook.relative_to(ROOT).as_posix()
    status, model = server.request("GET", f"/api/contents/{rel}?type=notebook&content=1")
    assert status == 200, f"JupyterLab could not open {rel}: {model.get('message')}"
    assert model["type"] == "notebook" and model["format"] == "json"
    # the server validates the notebook and reports problems (e.g. an invalid nbformat) in "message"
    assert not model.get("message"), f"{rel} opened with a warning: {model['message']}"
    content = model["content"]
    assert content["nbformat"] == 4 and content["cells"], f"{rel} has no cells"
    kernel_name = content["metadata"].get("kernelspec", {}).get("name")
    assert kernel_name == "python3", f"{rel} asks for kernel {kernel_name!r}; save it with the python3 kernel"

    # what JupyterLab does next: a session ties the notebook to a new kernel
    status, session = server.request(
        "POST", "/api/sessions",
        {"path": rel, "name": notebook.name, "type": "notebook", "kernel": {"name": kernel_name}},
    )  # fmt: skip
    assert status == 201, f"could not start a kernel for {rel}: {session.get('message')}"
    try:
        kernel_id = session["kernel"]["id"]
        assert _execute(server, kernel_id, "1 + 1") == "2"
        status, kernel = server.request("GET", f"/api/kernels/{kernel_id}")
        assert status == 200 and kernel["execution_state"] in ("idle", "busy")
    finally:
        status, _ = server.request("DELETE", f"/api/sessions/{session['id']}")
        assert status == 204
