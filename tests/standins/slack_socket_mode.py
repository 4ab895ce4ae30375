"""A stand-in for Slack's Socket Mode WebSocket (https://api.slack.com/apis/socket-mode): the URL the Web API's
apps.connections.open hands out. On connect it sends `hello`; `push_event()` sends an `events_api` envelope and the
client's acknowledgement (`{"envelope_id": …}`) is recorded; `drop()` closes every connection and refuses new ones
until `accept()`.

An aiohttp server on an event loop of its own thread, on an ephemeral port of 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from typing import Any

from aiohttp import WSMsgType, web

PATH = "/link"


class SocketModeStandIn:
    def __init__(self) -> None:
        self.acks: list[str] = []
        self.connections = 0
        self._sockets: set[web.WebSocketResponse] = set()
        self._accepting = True
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="socket-mode-stand-in")
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{PATH}"

    def start(self) -> SocketModeStandIn:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get(PATH, self._socket)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if not self._accepting:
            return web.Response(status=503, text="stand-in refusing connections")
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.connections += 1
        self._sockets.add(socket)
        await socket.send_str(json.dumps({"type": "hello", "num_connections": 1,
                                          "connection_info": {"app_id": "A1"}, "debug_info": {"host": "stand-in"}}))
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                envelope_id = json.loads(message.data).get("envelope_id")
                if envelope_id:
                    self.acks.append(envelope_id)
        self._sockets.discard(socket)
        return socket

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def push_event(self, event_callback: dict[str, Any]) -> str:
        """Send an Events API payload (an event_callback envelope) as Socket Mode does; returns its envelope id."""
        envelope_id = f"env-{next(self._ids)}"
        message = json.dumps({"envelope_id": envelope_id, "type": "events_api", "accepts_response_payload": False,
                              "retry_attempt": 0, "retry_reason": "", "payload": event_callback})

        async def send() -> None:
            for socket in list(self._sockets):
                await socket.send_str(message)

        self._run(send())
        return envelope_id

    def wait_connected(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._sockets:
                return True
            time.sleep(0.05)
        return False

    def drop(self) -> None:
        self._accepting = False

        async def close() -> None:
            for socket in list(self._sockets):
                await socket.close()

        self._run(close())

    def stop(self) -> None:
        self.drop()
        self._run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
