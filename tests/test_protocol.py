"""The server's connection tuning: a response's writes leave as one send, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from feedback_loop.server.protocol import CoalescingTransport, protocol_path


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def test_writes_in_one_turn_leave_together_and_in_order() -> None:
    async def main() -> RecordingTransport:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw)
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(memoryview(b"body"))
        assert raw.writes == []  # not yet: the turn is not over
        assert transport.get_write_buffer_size() == 23
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest passes on
        return raw

    raw = asyncio.run(main())
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]


def test_close_sends_what_is_pending_and_abort_drops_it() -> None:
    async def main() -> tuple[RecordingTransport, RecordingTransport]:
        closed, aborted = RecordingTransport(), RecordingTransport()
        first, second = CoalescingTransport(closed), CoalescingTransport(aborted)
        first.write(b"last words")
        first.close()
        second.write(b"never sent")
        second.abort()
        await asyncio.sleep(0)
        return closed, aborted

    closed, aborted = asyncio.run(main())
    assert closed.writes == [b"last words"] and closed.closed
    assert aborted.writes == [] and aborted.closed


def test_the_fast_parser_is_chosen_when_installed() -> None:
    assert protocol_path().endswith(":NoDelayHttpToolsProtocol")
