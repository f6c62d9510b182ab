"""A block's contract VM stays bounded whatever the number of calls: blocks of about 290 MB
of contract storage written or read, built and replayed by a second chain (in process, but
slow: they move that much data)."""

from __future__ import annotations

from typing import Any

import pytest
from framework.chain import ChainNet

from smartchain.crypto.keys import PrivateKey
from smartchain.modules.contracts.module import query_call
from smartchain.modules.contracts.types import Arg, Call, Deploy, contract_address
from smartchain.state.params import Params

HPC = 10**8
ALICE, BOB, CAROL = (PrivateKey.from_seed(bytes([i]) * 32) for i in (41, 42, 43))
PROPOSER = PrivateKey.from_seed(bytes([49]) * 32)


class Net(ChainNet):
    block_ms = 60_000

    def deploy(self, key: PrivateKey, source: bytes) -> bytes:
        nonce = self.nonces.get(key.address, 0)
        receipt = self.send(key, Deploy(source, ()))
        assert receipt.ok, receipt.log
        return contract_address(key.address, nonce + 1)

    def query(self, contract: bytes, function: str, *args: Any) -> tuple:
        out = self.read(query_call, self.chain.params, contract, function, list(args),
                        caller=ALICE.address, height=self.chain.height, time_ms=0)
        assert out.ok, out.error
        return out.results


WRITER = b"""
local pad = string.rep("v", 16 * 1024 - 24)
function fill(base, n)
  for k = base + 1, base + n do storage.set(k, concat(pad, ":", k)) end
end
function count(base, n)
  local total = 0
  for k = base + 1, base + n do total = total + #storage.get(k) end
  return total
end
"""
WRITERS = (ALICE, BOB, CAROL)


def _fills(net: Net, c: bytes, first: int, calls: int) -> list[bytes]:
    """``calls`` transactions each writing 300 distinct 16 KB values (about 49 M gas each)."""
    return [net.sign(WRITERS[i % 3], Call(c, "fill", (Arg.of(300 * i), Arg.of(300))),
                     gas_limit=50_000_000) for i in range(first, first + calls)]


def _replay(chainkit, net: Net) -> Any:
    twin = chainkit.open(net.chain.genesis)
    for block in net.blocks:
        twin.apply_block(block, chainkit.checked_of_block(twin, block.txs))
    return twin


@pytest.fixture
def roomy_net(chainkit) -> Net:
    """A chain whose governance let blocks take 4 G gas (the default 250 M fits 5 of the
    calls below): the VM's bound must not depend on the block gas limit."""
    gen = chainkit.genesis({ALICE: 1_000 * HPC, BOB: 1_000 * HPC, CAROL: 1_000 * HPC},
                           params=Params(max_block_gas=4_000_000_000))
    return Net(chainkit, chainkit.open(gen), PROPOSER)


def test_a_block_of_many_calls_writing_16kb_values_is_built_and_validated(
        roomy_net: Net, chainkit) -> None:
    """60 calls writing 300 distinct 16 KB values each (about 290 MB) in one block: more
    than the Lua runtime holds (256 MiB), so the block VM must not keep them all."""
    net = roomy_net
    c = net.deploy(ALICE, WRITER)
    receipts = net.block(*_fills(net, c, 0, 60))
    assert len(receipts) == 60
    assert all(r.ok for r in receipts), [r.log for r in receipts if not r.ok][:1]
    stored = sum(16 * 1024 - 23 + len(str(k)) for k in range(300 * 59 + 1, 300 * 60 + 1))
    assert net.query(c, "count", 300 * 59, 300) == (stored,)
    twin = _replay(chainkit, net)
    assert (twin.height, twin.state_root) == (net.chain.height, net.chain.state_root)


def test_a_block_of_many_read_heavy_calls_is_built_and_validated(roomy_net: Net,
                                                                 chainkit) -> None:
    """Ten calls each reading 1,800 distinct stored 16 KB values (about 29 MB, under one
    call's memory limit) in one block: about 290 MB read, which the VM must not keep."""
    net = roomy_net
    c = net.deploy(ALICE, WRITER)
    for first in range(0, 60, 20):
        assert all(r.ok for r in net.block(*_fills(net, c, first, 20)))
    reads = [net.sign(WRITERS[i % 3], Call(c, "count", (Arg.of(1800 * i), Arg.of(1800))),
                      gas_limit=10_000_000) for i in range(10)]
    receipts = net.block(*reads)
    assert [r.ok for r in receipts] == [True] * 10, [r.log for r in receipts if not r.ok][:1]
    twin = _replay(chainkit, net)
    assert (twin.height, twin.state_root) == (net.chain.height, net.chain.state_root)
