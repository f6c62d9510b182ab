"""Fixtures for every test; the helpers behind them live in ``tests/framework``.

Pytest puts this folder on ``sys.path`` (its default "prepend" import mode), so tests import
the framework as ``from framework.chain import ChainNet``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from framework.chain import ChainKit
from framework.mqtt import running_broker

from smartchain.agent.broker import LocalBroker


@pytest.fixture
def chainkit(tmp_path: Path) -> Iterator[ChainKit]:
    """A ``ChainKit`` in the test's tmp_path; the chains it opened are closed at teardown."""
    kit = ChainKit(tmp_path)
    yield kit
    kit.close_all()


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A real mosquitto on a free 127.0.0.1 port (``.port``), its config and log under
    tmp_path/mosquitto; stopped at teardown."""
    with running_broker(tmp_path / "mosquitto") as broker:
        yield broker
