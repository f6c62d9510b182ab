"""Fixtures for the functional tests: real node processes (see tests/framework/harness.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from framework.harness import NodeProcess


@pytest.fixture(scope="module")
def smart_node_factory(tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[Callable[..., NodeProcess]]:
    """``make(**NodeProcess kwargs, start=True)`` -> a node in a fresh home; every node made
    is stopped (SIGTERM, then SIGKILL) at the end of the module, whatever happened."""
    nodes: list[NodeProcess] = []

    def make(*, start: bool = True, **kwargs: object) -> NodeProcess:
        node = NodeProcess(tmp_path_factory.mktemp("node"), **kwargs)  # type: ignore[arg-type]
        nodes.append(node)
        if start:
            node.start()
        return node

    try:
        yield make
    finally:
        for node in nodes:
            node.cleanup()


@pytest.fixture(scope="module")
def smart_node(request: pytest.FixtureRequest,
               smart_node_factory: Callable[..., NodeProcess]) -> NodeProcess:
    """One started node per test module; its genesis accounts come from the module's
    ``SMART_NODE_GENESIS`` list of (address bytes, balance) and chain id from
    ``SMART_NODE_CHAIN_ID`` when present. Stopped by ``smart_node_factory`` at teardown."""
    accounts = getattr(request.module, "SMART_NODE_GENESIS", [])
    chain_id = getattr(request.module, "SMART_NODE_CHAIN_ID", "smart-test-1")
    return smart_node_factory(accounts=list(accounts), chain_id=chain_id)


@pytest.fixture(scope="module")
def api(smart_node: NodeProcess) -> Iterator[Any]:
    """An HTTP session on the module's node (``test_api.Api``); at teardown the node must
    still be running with no error in its log."""
    from test_api import Api

    a = Api(smart_node.url or "")
    yield a
    a.session.close()
    assert smart_node.running, f"node died; log:\n{smart_node.log_tail()}"
    assert smart_node.log_errors() == [], smart_node.log_tail()
