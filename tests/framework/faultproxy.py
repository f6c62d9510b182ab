"""A fault-injecting TCP proxy for network tests, run on its own event loop thread.

``ProxyNet`` owns an asyncio loop in a daemon thread and any number of ``Link``s. A link
listens on 127.0.0.1 (a port of its own) and forwards every connection it accepts to one
target address, byte for byte, in both directions. Tests point a node's seed at a link
instead of at the peer itself, so that the link decides whether the two can talk:

* ``cut(reset=True)``: every connection through the link is aborted (the peers see a
  reset) and new ones are accepted and aborted at once, as if the peer were gone;
* ``cut(reset=False)``: a black hole. Connections stay open but nothing is forwarded; the
  bytes wait (bounded by TCP back-pressure) and flow again on ``heal``, as a TCP stream
  does after a short outage. A connection attempted meanwhile is held, not refused.
* ``heal()``: forward again.

``delay_ms`` delays every chunk by that much in each direction, in order (a one-way
delay, as ``tc netem delay`` would add, for kernels without netem; bench/wan.py).

``record=True`` keeps the bytes of every connection per direction (``connections``), so a
test can replay what a real client sent.

All methods are called from the test's (synchronous) thread; each runs on the proxy's
loop and returns once the change is in effect. ``close()`` stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
_CHUNK = 64 * 1024


@dataclass
class Recorded:
    """The bytes one proxied connection carried: client to target, and back."""

    up: bytearray = field(default_factory=bytearray)
    down: bytearray = field(default_factory=bytearray)


class Link:
    """One listening port forwarding to ``target``. Use through ``ProxyNet``."""

    def __init__(self, name: str, target: tuple[str, int], record: bool,
                 delay_ms: int = 0) -> None:
        self.name = name
        self.target = target
        self.record = record
        self.delay_s = delay_ms / 1000
        self.port = 0
        self.mode = "open"  # "open", "reset" or "blackhole"
        self.accepted = 0  # connections accepted (including those reset at once)
        self.refused = 0  # ... of which reset because the link was cut
        self.forwarded = 0  # ... of which connected through to the target
        self.connections: list[Recorded] = []
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _on_accept(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "reset":
            self.refused += 1
            _abort(writer)
            return
        self._live.add(writer)
        me = asyncio.current_task()
        if me is not None:  # close() cancels connection handlers too, not only their pumps
            self._tasks.add(me)
        try:
            await self._open.wait()  # a black hole holds new connections too
            if self.mode == "reset" or writer.transport.is_closing():
                _abort(writer)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                _abort(writer)
                return
            self._live.add(up_writer)
            self.forwarded += 1
            rec = Recorded()
            if self.record:
                self.connections.append(rec)
            pumps = [asyncio.ensure_future(self._pump(reader, up_writer, rec.up)),
                     asyncio.ensure_future(self._pump(up_reader, writer, rec.down))]
            self._tasks.update(pumps)
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pumps:
                    task.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                self._tasks.difference_update(pumps)
                for w in (writer, up_writer):  # one side ended: end the other one too
                    if self.mode == "reset":
                        _abort(w)
                    else:
                        w.close()  # after what is already queued for it
                self._live.discard(up_writer)
        finally:
            self._live.discard(writer)
            self._tasks.discard(me)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    log: bytearray) -> None:
        if self.delay_s:
            return await self._pump_delayed(reader, writer, log)
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    return
                await self._open.wait()  # black hole: hold the bytes (and stop reading)
                if self.mode == "reset":
                    return
                if self.record:
                    log += data
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return

    async def _pump_delayed(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter, log: bytearray) -> None:
        """Each chunk written ``delay_s`` after it was read, in order; reading goes on
        meanwhile (the delay holds bytes in flight, it does not limit bandwidth)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while True:
                data = await reader.read(_CHUNK)
                await self._open.wait()
                if self.mode == "reset":
                    return
                if self.record:
                    log += data
                queue.put_nowait((loop.time() + self.delay_s, data))
                if not data:
                    await sender  # what is in flight still arrives, then the end
                    return
        except (OSError, asyncio.IncompleteReadError):
            return
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    def cut(self, reset: bool) -> None:
        if reset:
            self.mode = "reset"
            for w in list(self._live):
                _abort(w)
            self._open.set()  # wake held pumps so they see the reset and exit
        else:
            self.mode = "blackhole"
            self._open.clear()

    def heal(self) -> None:
        self.mode = "open"
        self._open.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._live):
            _abort(w)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)


def _abort(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()


class ProxyNet:
    """Links by name, on one private event loop thread. A context manager."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.links: dict[str, Link] = {}
        self._thread = threading.Thread(target=self.loop.run_forever, name="faultproxy",
                                        daemon=True)
        self._thread.start()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add(self, name: str, target: tuple[str, int], *, record: bool = False,
            delay_ms: int = 0) -> int:
        """A new link forwarding to ``target`` (each way ``delay_ms`` late); returns the
        port it listens on."""
        if name in self.links:
            raise ValueError(f"link {name!r} exists")

        async def make() -> Link:
            link = Link(name, target, record, delay_ms)
            await link.start()
            return link

        link = self._call(make())
        self.links[name] = link
        return link.port

    def cut(self, names: list[str] | None = None, *, reset: bool = True) -> None:
        """Cut the named links (all without names); see the module docstring."""
        async def do() -> None:
            for name in names if names is not None else list(self.links):
                self.links[name].cut(reset)

        self._call(do())

    def heal(self, names: list[str] | None = None) -> None:
        async def do() -> None:
            for name in names if names is not None else list(self.links):
                self.links[name].heal()

        self._call(do())

    def close(self) -> None:
        if not self.loop.is_running():
            return

        async def do() -> None:
            for link in self.links.values():
                await link.close()

        try:
            self._call(do())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5.0)
            if not self._thread.is_alive():
                self.loop.close()

    def __enter__(self) -> ProxyNet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
