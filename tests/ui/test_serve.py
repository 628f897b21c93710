"""`qwen-tui --serve`: a real server on 127.0.0.1, a real HTTP request, a real websocket session."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time

import aiohttp
import pytest

from qwen_tui.ui.serve import app_command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture
def served(demo_model_path, tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "qwen_tui", "--serve", "--port", str(port), "--model",
                             str(demo_model_path), "--no-save", "--theme", "paper"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "QWEN_TUI_HOME": str(tmp_path)})
    try:
        wait_listening(port, proc)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


ANSI = re.compile(rb"\x1b\[[0-9;?$]*[A-Za-z]|\x1b\][^\x07]*\x07")


async def _receive_until(ws, received: bytearray, *words: bytes, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not all(word in ANSI.sub(b"", bytes(received)) for word in words):
        assert time.monotonic() < deadline, f"{words} not on screen: {ANSI.sub(b'', bytes(received))[-1500:]!r}"
        try:
            message = await asyncio.wait_for(ws.receive(), max(deadline - time.monotonic(), 0.01))
        except asyncio.TimeoutError:
            continue  # the assert above reports what is on screen
        if message.type == aiohttp.WSMsgType.BINARY:
            received += message.data
        elif message.type == aiohttp.WSMsgType.TEXT:
            received += message.data.encode()
        else:
            raise AssertionError(f"websocket ended: {message.type}")


async def _session(port: int) -> tuple[str, bytes]:
    """What a browser does: load the page, open the websocket, watch the screen, type."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/") as response:
            assert response.status == 200
            page = await response.text()
        received = bytearray()
        async with http.ws_connect(f"ws://127.0.0.1:{port}/ws?width=100&height=30") as ws:
            await ws.send_json(["focus"])
            # the status line: the served process loaded the model and is ready
            await _receive_until(ws, received, b"idle", b"think on", b"ctx 0")
            await ws.send_json(["stdin", "/help\r"])  # keys typed in the browser reach the app
            await _receive_until(ws, received, b"Keys", b"Newline", b"Quit")  # the help screen, the footer
        return page, bytes(received)


def test_serve_answers_on_loopback_and_runs_the_app(served):
    port, proc = served
    page, screen = asyncio.run(_session(port))
    assert "textual.js" in page and f"ws://127.0.0.1:{port}/ws" in page  # textual-serve's page
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr  # a clean exit
    assert f"serving on http://127.0.0.1:{port}" in stderr


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_stopping_the_server_ends_open_sessions_apps(served):
    port, proc = served

    async def open_session_then_stop() -> list[int]:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"ws://127.0.0.1:{port}/ws?width=80&height=24") as ws:
                await _receive_until(ws, bytearray(), b"idle")  # the app (and its model worker) is up
                apps = _children(proc.pid)
                assert apps, "no app process behind the session"
                apps += [worker for app in apps for worker in _children(app)]  # the model worker
                proc.send_signal(signal.SIGTERM)  # as Ctrl+C would, with a browser still connected
                started = time.monotonic()
                await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)
                print(f"server stopped {time.monotonic() - started:.1f} s after SIGTERM")
                return apps

    apps = asyncio.run(open_session_then_stop())
    assert proc.returncode == 0
    time.sleep(0.5)
    assert [p for p in apps if os.path.exists(f"/proc/{p}")] == []  # no orphaned app (nor its worker)


def test_serve_never_listens_on_other_interfaces(served):
    port, _ = served
    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
    for address in addresses:
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex((address, port)) != 0, f"--serve answered on {address}"


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "qwen_tui", "--serve", "--port", str(port), "--demo"],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "QWEN_TUI_HOME": str(tmp_path)})
    assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_served_command_is_this_one_without_serve_flags():
    command = app_command(["--serve", "--port", "9000", "--model", "/m/a b.gguf", "--port=1", "--no-think"])
    assert command.endswith("-m qwen_tui --model '/m/a b.gguf' --no-think")
    assert command.startswith(sys.executable)
