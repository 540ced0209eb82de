"""uvicorn's HTTP/1.1 protocol with TCP_NODELAY on every connection.

Sockets that uvicorn hands to worker processes come without it, and then every response on a
kept-alive connection waits for the peer's delayed ACK (about 40 ms). uvicorn loads this class
by its import path (``feedback_loop.server.protocol:NoDelayH11Protocol``) in each worker.
"""

from __future__ import annotations

import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
