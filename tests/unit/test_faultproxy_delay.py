"""The fault proxy's delaying links (tests/framework/faultproxy.py, ``delay_ms``), which
bench/wan.py runs every P2P link through where the kernel has no netem."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from framework.faultproxy import ProxyNet

DELAY_MS = 80


@pytest.fixture
def echo() -> Iterator[int]:
    """A TCP echo server on a port of its own."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_a_delayed_link_carries_every_byte_in_order_a_round_trip_late(echo: int) -> None:
    with ProxyNet() as net:
        port = net.add("slow", ("127.0.0.1", echo), delay_ms=DELAY_MS)
        payload = bytes(range(256)) * 2_000  # several chunks each way
        with socket.create_connection(("127.0.0.1", port)) as sock:
            started = time.monotonic()
            sock.sendall(payload)
            got = bytearray()
            while len(got) < len(payload):
                chunk = sock.recv(65536)
                assert chunk, "the link closed early"
                got += chunk
            took = time.monotonic() - started
        assert bytes(got) == payload
        assert took >= 2 * DELAY_MS / 1000  # there and back: never sooner than the delay
