"""Conservation and invariant checks a test runs on a chain it built or a node left behind.

Every module declares its invariants (supply conserved, escrow matches the open deals, …);
``Chain.check_invariants`` runs them all. These wrappers make the check one line in a test,
on a live ``Chain`` or, after a node process has stopped, on the chain in its home.
"""

from __future__ import annotations

from pathlib import Path

from smartchain.app import open_chain
from smartchain.node.config import DATA_DIR
from smartchain.state.chain import Chain
from smartchain.state.genesis import Genesis


def invariant_violations(chain: Chain) -> list[str]:
    """Every module's invariant violations on the chain's latest committed state."""
    with chain.reader() as reader:
        return chain.check_invariants(reader)


def assert_invariants(chain: Chain) -> None:
    """Fail the test, naming each broken invariant, unless every module's books balance."""
    violations = invariant_violations(chain)
    assert violations == [], violations


def assert_home_invariants(home: Path, genesis: Genesis) -> None:
    """The same check on the chain a stopped node left in ``home`` (never on a running
    node: the node process owns its database while it runs)."""
    chain = open_chain(Path(home) / DATA_DIR, genesis)
    try:
        assert_invariants(chain)
    finally:
        chain.close()
