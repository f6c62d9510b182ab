"""An example functional test: copy this file to start a new one (see docs/testing.md).

It starts a small network of real node processes, sends a transaction through one node's
HTTP API, waits until another node has it, checks a balance, stops the nodes and checks
every module's invariants on the chains they left on disk. Everything goes through what a
user has (processes, HTTP, files): no mocks, and no ``sleep`` standing in for "it happened".
"""

from __future__ import annotations

from pathlib import Path

# The framework lives in tests/framework; pytest puts tests/ on sys.path.
from framework.checks import assert_home_invariants
from framework.harness import wait_until
from framework.netharness import Network

from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey

# Keys from fixed seeds, so a failure replays with the same addresses.
ALICE = PrivateKey.from_seed(b"\x0a" * 32)
BOB = PrivateKey.from_seed(b"\x0b" * 32)
FUNDS = 1_000_000_000


def test_a_transfer_sent_to_one_node_reaches_the_other_and_keeps_the_books(
        tmp_path: Path) -> None:
    # 1. A network of two validators sharing one genesis that funds ALICE. The `with` block
    #    kills every node process on the way out, even when an assertion fails.
    with Network(tmp_path, n=2, accounts=[(ALICE.address, FUNDS)]) as net:
        # 2. Start both nodes (each waits until its API answers), then wait until the two
        #    agree on a first block: the network is live.
        net.start_all()
        net.wait_all(1)

        # 3. Send a transfer through node 0. The SDK simulates it for the gas, signs it,
        #    submits it and waits until it is committed; the receipt says whether it worked.
        sent = net.client(0).transfer(ALICE, to_bech32(BOB.address), 1_234)
        assert sent["receipt"]["ok"], sent

        # 4. Node 1 learns of it through consensus, a little later: poll its API with a
        #    deadline (`wait_until` returns the first truthy value, or fails the test).
        wait_until(lambda: net.client(1).balance(to_bech32(BOB.address)) == 1_234,
                   what="bob's balance on node 1")

        # 5. Stop the nodes cleanly (SIGTERM; exit code 0), then open the chain each left in
        #    its home and check every module's invariants (supply conserved, escrows match).
        for i in range(len(net)):
            assert net.stop(i) == 0, net[i].log_tail()
            assert_home_invariants(net[i].home, net.genesis)
