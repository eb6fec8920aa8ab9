"""HTTP/1.1 for the authorization server: h11 on asyncio, as the gateway serves, with tighter bounds.

Each request's head and body must arrive within ``REQUEST_DEADLINE_S`` and fit ``MAX_HEAD`` / ``MAX_BODY``
(its forms and registrations are small); at most ``MAX_CONNECTIONS`` at once. The route runs in a worker
thread (``App.handle`` may fetch a client metadata document), so the loop keeps accepting meanwhile. Only
the method, path and status are logged: queries and bodies carry codes, tokens and the passphrase.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import h11

from .app import App, Request, Response

log = logging.getLogger("catwalk.authserver.http")

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
REQUEST_DEADLINE_S = 15.0
KEEP_ALIVE_S = 5.0
MAX_CONNECTIONS = 256
REASONS = {200: b"OK", 201: b"Created", 204: b"No Content", 302: b"Found", 400: b"Bad Request",
           401: b"Unauthorized", 404: b"Not Found", 405: b"Method Not Allowed", 413: b"Content Too Large",
           429: b"Too Many Requests", 500: b"Internal Server Error", 503: b"Service Unavailable"}  # fmt: skip


class _Closed(Exception):
    pass


class Connection:
    def __init__(self, app: App, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.app, self.reader, self.writer = app, reader, writer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)

    async def _event(self, deadline: float) -> object:
        loop = asyncio.get_running_loop()
        while (event := self.conn.next_event()) is h11.NEED_DATA:
            wait = deadline - loop.time()
            if wait <= 0:
                raise _Closed
            try:
                data = await asyncio.wait_for(self.reader.read(16384), wait)
            except asyncio.TimeoutError:
                raise _Closed from None
            self.conn.receive_data(data)
        return event

    async def _send(self, response: Response, head_only: bool = False) -> None:
        headers = [(k.encode(), v.encode("latin-1", "replace")) for k, v in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode()))
        self.writer.write(self.conn.send(h11.Response(status_code=response.status, headers=headers,
                                                      reason=REASONS.get(response.status, b""))))  # fmt: skip
        if response.body and not head_only:
            self.writer.write(self.conn.send(h11.Data(data=response.body)))
        self.writer.write(self.conn.send(h11.EndOfMessage()))
        await self.writer.drain()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                first = await self._event(loop.time() + KEEP_ALIVE_S)
                if not isinstance(first, h11.Request):
                    return
                deadline = loop.time() + REQUEST_DEADLINE_S
                names = [name.lower() for name, _ in first.headers]
                if b"transfer-encoding" in names and b"content-length" in names:
                    await self._send(Response(400, b"Both Content-Length and Transfer-Encoding\n",
                                              [("Connection", "close")]))  # fmt: skip
                    return
                body = bytearray()
                while not isinstance(event := await self._event(deadline), h11.EndOfMessage):
                    if not isinstance(event, h11.Data):
                        return
                    body += event.data
                    if len(body) > MAX_BODY:
                        await self._send(Response(413, b"Request body too large\n", [("Connection", "close")]))
                        return
                target = first.target.decode("ascii", "replace")
                path, _, query = target.partition("?")
                request = Request(
                    method=first.method.decode("ascii", "replace"),
                    path=path,
                    query=query,
                    body=bytes(body),
                    headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in first.headers},
                )
                try:
                    response = await asyncio.to_thread(self.app.handle, request)
                except Exception:  # a bug answers 500 and is logged; the server goes on
                    log.exception("error handling %s %s", request.method, request.path)
                    response = Response(500, b"Internal Server Error\n", [("Content-Type", "text/plain")])
                log.info('"%s %s" %d', request.method, request.path[:200], response.status)
                await self._send(response, head_only=request.method == "HEAD")
                if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is not h11.DONE:
                    return
                self.conn.start_next_cycle()
        except (_Closed, ConnectionError, asyncio.IncompleteReadError):
            return
        except h11.RemoteProtocolError as exc:
            if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(Exception):
                    await self._send(Response(exc.error_status_hint, b"Bad Request\n", [("Connection", "close")]))
        finally:
            self.writer.close()


async def serve(app: App, sockets: list[socket.socket]) -> None:
    """Serve on ``sockets`` until cancelled."""
    slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if slots.locked():
            writer.transport.abort()
            return
        async with slots:
            await Connection(app, reader, writer).run()

    servers = [await asyncio.start_server(on_connection, sock=sock) for sock in sockets]
    try:
        await asyncio.gather(*(server.serve_forever() for server in servers))
    finally:
        for server in servers:
            server.close()
