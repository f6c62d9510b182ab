"""Every module states its books as invariants; the chain reports each broken one by module.

``ChainNet`` (tests/framework/chain.py) asserts them after every block of the module tests; these
tests show each check catches the kind of bug it is there for."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from framework.chain import ChainKit

from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import add_balance, move_hpc
from smartchain.modules.compute.types import MODULE_ACCOUNT as COMPUTE_ACCOUNT
from smartchain.modules.storage.types import MODULE_ACCOUNT as STORAGE_ACCOUNT
from smartchain.modules.tokens.module import balance_key
from smartchain.state.chain import Chain
from smartchain.state.store import Overlay

ALICE = PrivateKey.from_seed(bytes([1]) * 32)


@contextmanager
def pending(chain: Chain) -> Iterator[Overlay]:
    """Uncommitted writes over the chain's committed state."""
    with chain.reader() as reader:
        yield Overlay(reader)


@pytest.fixture
def chain(chainkit: ChainKit) -> Chain:
    return chainkit.open(chainkit.genesis({ALICE: 10**12}))


def test_a_fresh_chain_breaks_no_invariant(chain: Chain) -> None:
    with chain.reader() as reader:
        assert chain.check_invariants(reader) == []


@pytest.mark.parametrize(("bug", "module"), [
    (lambda store: add_balance(store, ALICE.address, 1), "bank"),  # HPC out of thin air
    (lambda store: move_hpc(store, ALICE.address, COMPUTE_ACCOUNT, 5), "compute"),  # unbooked
    (lambda store: move_hpc(store, ALICE.address, STORAGE_ACCOUNT, 5), "storage"),
    (lambda store: store.set(balance_key("GHOST", ALICE.address), (7).to_bytes(8, "big")),
     "tokens"),  # units of a token whose supply does not count them
])
def test_each_modules_invariants_report_a_write_that_breaks_its_books(
        chain: Chain, bug: Callable[[Overlay], None], module: str) -> None:
    with pending(chain) as store:
        bug(store)
        violations = chain.check_invariants(store)
    assert len(violations) == 1 and violations[0].startswith(f"{module}: "), violations
