"""A real mosquitto broker for a test: on a free 127.0.0.1 port, config and log in tmp_path.

The ``mqtt_broker`` fixture (tests/conftest.py) yields a started ``LocalBroker`` (its
``port``) and always stops it, whatever the test did.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from smartchain.agent.broker import LocalBroker


@contextmanager
def running_broker(directory: Path) -> Iterator[LocalBroker]:
    broker = LocalBroker(directory)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
