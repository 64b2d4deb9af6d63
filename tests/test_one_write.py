"""An answer leaves in one write: the head is held until the body's first write."""

from __future__ import annotations

from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from waypost.connections import OneWrite


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


class Cycle:
    def __init__(self) -> None:
        self.transport: Any = Transport()
        self.response_started = False
        self.completed = 0
        self.on_response = self.complete

    def complete(self) -> None:
        self.completed += 1


def attached() -> tuple[Cycle, Transport]:
    cycle = Cycle()
    transport = cycle.transport
    OneWrite.attach(cast(RequestResponseCycle, cycle))
    return cycle, transport


def test_the_head_and_the_body_leave_in_one_write() -> None:
    cycle, transport = attached()
    cycle.response_started = True
    cycle.transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == []
    cycle.transport.write(b"{}")
    cycle.on_response()
    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    assert cycle.completed == 1


def test_100_continue_is_not_held_and_a_head_alone_leaves_on_completion() -> None:
    cycle, transport = attached()
    cycle.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    cycle.response_started = True
    cycle.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")  # a HEAD answer
    cycle.on_response()
    assert transport.writes[1:] == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"]


def test_closing_sends_a_held_head_first_and_later_writes_pass_through() -> None:
    cycle, transport = attached()
    cycle.response_started = True
    cycle.transport.write(b"head")
    cycle.transport.close()
    assert (transport.writes, transport.closed) == ([b"head"], True)
    cycle, transport = attached()
    cycle.response_started = True
    for chunk in (b"head", b"a", b"b"):
        cycle.transport.write(chunk)
    assert transport.writes == [b"heada", b"b"]
    assert cycle.transport.get_extra_info("peername") == ("127.0.0.1", 1)
