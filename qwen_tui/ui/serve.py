"""`qwen-tui --serve [--port N]`: the same app in a web browser, through textual-serve.

Each browser tab gets its own `qwen-tui` process (started with the other flags given here)
whose screen textual-serve streams over a websocket. It listens on 127.0.0.1 only: anyone who
can reach the page can use the model and its tools as you, so it is never put on a network
interface (use an SSH tunnel, `ssh -L 8000:127.0.0.1:8000 host`, to reach it from elsewhere).
"""

from __future__ import annotations

import shlex
import sys

HOST = "127.0.0.1"


def app_command(argv: list[str]) -> str:
    """The command each browser session runs: these arguments without --serve/--port."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--serve" or arg.startswith("--port="):
            continue
        elif arg == "--port":
            skip = True
        else:
            rest.append(arg)
    return shlex.join([sys.executable, "-m", "qwen_tui", *rest])


def serve(argv: list[str], port: int) -> int:
    if not 0 < port < 65536:
        print(f"qwen-tui: error: --port must be 1..65535, not {port}", file=sys.stderr)
        return 2
    import socket

    with socket.socket() as probe:  # a clear message instead of aiohttp's traceback
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            print(f"qwen-tui: error: cannot listen on {HOST}:{port}: {exc.strerror} (try --port N)", file=sys.stderr)
            return 2
    server = _server_class()(app_command(argv), host=HOST, port=port, title="qwen-tui")
    print(f"qwen-tui: serving on http://{HOST}:{port} (Ctrl+C to stop)", file=sys.stderr, flush=True)
    server.serve()
    return 0


def _server_class():
    from textual_serve.server import Server

    class QwenServer(Server):
        """textual-serve's Server, plus: Ctrl+C / SIGTERM end the open sessions' app processes at once
        (textual-serve alone leaves them to aiohttp's 60 s shutdown timeout)."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.sessions: set = set()

        async def _process_messages(self, websocket, app_service) -> None:
            session = (websocket, app_service)
            self.sessions.add(session)
            try:
                await super()._process_messages(websocket, app_service)
            finally:
                self.sessions.discard(session)

        async def on_shutdown(self, app) -> None:
            for websocket, app_service in list(self.sessions):
                await app_service.stop()  # asks the app to quit and waits for its process
                await websocket.close()
            await super().on_shutdown(app)

    return QwenServer
