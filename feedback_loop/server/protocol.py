"""uvicorn's HTTP/1.1 protocols, tuned for many small requests on kept-alive connections.

* TCP_NODELAY on every connection: sockets that uvicorn hands to worker processes come without
  it, and then every response on a kept-alive connection waits for the peer's delayed ACK
  (about 40 ms).
* One send per response: uvicorn writes the status line and headers, then the body, as two
  writes; with TCP_NODELAY that is two packets and two wake-ups of the client. Writes made in
  one turn of the event loop are joined and sent together at the start of the next turn.

uvicorn loads these classes by their import path in each worker: the httptools parser (C,
uvicorn's own fast choice) where it is installed, else h11 (pure Python).
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from typing import Any, cast

from uvicorn.protocols.http.h11_impl import H11Protocol


class CoalescingTransport:
    """A transport whose writes in one event-loop turn leave as a single ``write``."""

    def __init__(self, transport: Any):
        self._transport = transport
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if self._pending and not self._transport.is_closing():
            self._transport.write(b"".join(self._pending))
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return int(self._transport.get_write_buffer_size()) + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _tuned(transport: Any) -> asyncio.Transport:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return cast(asyncio.Transport, CoalescingTransport(transport))  # duck-typed: a proxy


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(_tuned(transport))


def protocol_path() -> str:
    """The import path of the fastest protocol class available here."""
    if importlib.util.find_spec("httptools") is not None:
        return f"{__name__}:NoDelayHttpToolsProtocol"
    return f"{__name__}:NoDelayH11Protocol"


if importlib.util.find_spec("httptools") is not None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class NoDelayHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(_tuned(transport))
