"""Lua contract calls/s versus the native tokens module, in one run.

(a) VM alone: the token-transfer contract (examples/contracts/token.lua) called in the
    sandbox (metered, host calls, storage in memory): calls/s. Target >= 100,000.
    Also the same for a function that does nothing: the VM's own cost per metered call.
(b) full path, contract: signed ``contracts/call`` transfers decoded, checked, executed in
    blocks and committed to LMDB (``Chain.build_block``; signatures are the node's
    business and cost the same for both kinds): calls/s.
(c) full path, native: the same number of ``tokens/transfer`` transactions, same blocks.

Prints the three rates and the ratios b/c (what a contract costs over native code) and
a/target. Not a test: the machine is noisy, so compare the ratios.

    python bench/contracts.py [--calls 200000] [--txs 20000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from smartchain.app import open_chain
from smartchain.contracts.memhost import MemoryHost
from smartchain.contracts.vm import LuaVM
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.contracts.types import Arg, Call, Deploy, contract_address
from smartchain.modules.tokens.types import Issue, TokenTransfer
from smartchain.state.genesis import Genesis, GenesisAccount, GenesisValidator
from smartchain.state.params import Params
from smartchain.types.tx import Transaction

TOKEN_LUA = (Path(__file__).resolve().parent.parent / "examples/contracts/token.lua").read_bytes()
CHAIN = "bench-contracts"
TARGET_VM = 100_000


def vm_alone(calls: int, function: bytes = b"transfer") -> float:
    host = MemoryHost()
    vm = LuaVM(host)
    contract = bytes([7]) * 20
    host.sources[contract] = TOKEN_LUA + b"\nfunction nothing() end\n"
    me = to_bech32(bytes([1]) * 20).encode()
    peers = [to_bech32(bytes([i, 9]) * 10).encode() for i in range(2, 66)]
    address = to_bech32(contract).encode()
    host.begin(contract)
    vm.invoke(address, b"init", (calls,), gas=10**6, caller=me, value=0, origin=me, height=1,
              time_ms=0)
    invoke = vm.invoke
    t = time.perf_counter()
    for i in range(calls):
        host.begin(contract)
        out = invoke(address, function, (peers[i & 63], 1), gas=100_000, caller=me, value=0,
                     origin=me, height=1, time_ms=0)
        host.apply_writes(out.writes)  # as the chain does after every call
        if i % 5_000 == 4_999:  # a block boundary: the journal restarts
            host.commit()
    dt = time.perf_counter() - t
    assert out.ok, out.error
    return calls / dt


class Bench:
    def __init__(self, root: Path, n_senders: int) -> None:
        self.keys = [PrivateKey.from_seed(i.to_bytes(32, "big")) for i in range(1, n_senders + 1)]
        self.nonces = [0] * n_senders
        validator = PrivateKey.from_seed(b"\x99" * 32)
        genesis = Genesis(CHAIN, 1_700_000_000_000, Params(),
                          tuple(GenesisAccount(k.address, 10**13) for k in self.keys),
                          (GenesisValidator(validator.public_key, 1, "v"),))
        self.chain = open_chain(root, genesis)
        self.proposer = validator

    def tx(self, i: int, kind: str, payload: bytes, gas: int) -> bytes:
        nonce = self.nonces[i]
        self.nonces[i] += 1
        return Transaction.create(self.keys[i], chain_id=CHAIN, nonce=nonce, kind=kind,
                                  payload=payload, gas_limit=gas, gas_price=1).encode()

    def run(self, raws: list[bytes], per_block: int) -> float:
        """Decode, check, execute and commit ``raws`` in blocks: txs/s."""
        t = time.perf_counter()
        for start in range(0, len(raws), per_block):
            checked = [self.chain.executor.check_stateless(raw, Transaction.decode(raw),
                                                           h256(raw), CHAIN, self.chain.params)
                       for raw in raws[start:start + per_block]]
            time_ms = self.chain.next_time(1_700_000_000_000 + 1000 * (self.chain.height + 1))
            _block, receipts, skipped = self.chain.build_block(checked, time_ms, self.proposer)
            assert not skipped and all(r.ok for r in receipts), receipts[0].log
        return len(raws) / (time.perf_counter() - t)


def full_path(root: Path, txs: int, per_block: int) -> tuple[float, float]:
    n = 64
    bench = Bench(root, n)
    # every sender holds contract tokens and native tokens
    setup = []
    for i in range(n):
        setup.append(bench.tx(i, "contracts/deploy", Deploy(TOKEN_LUA, (Arg.of(10**12),)).encode(),
                              5_000_000))
        setup.append(bench.tx(i, "tokens/issue",
                              Issue(f"T{i}", f"Token {i}", 0, 10**12, False, 10**12).encode(),
                              2_000_000))
    bench.run(setup, 1000)
    contracts = [contract_address(k.address, 1) for k in bench.keys]
    peers = [to_bech32(k.address) for k in bench.keys]
    lua = [bench.tx(i % n, "contracts/call",
                    Call(contracts[i % n], "transfer",
                         (Arg.of(peers[(i * 7 + 1) % n]), Arg.of(1))).encode(), 200_000)
           for i in range(txs)]
    native = [bench.tx(i % n, "tokens/transfer",
                       TokenTransfer(f"T{i % n}", bench.keys[(i * 7 + 1) % n].address, 1).encode(),
                       200_000)
              for i in range(txs)]
    lua_rate = bench.run(lua, per_block)
    native_rate = bench.run(native, per_block)
    bench.chain.close()
    return lua_rate, native_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200_000, help="VM-alone calls")
    ap.add_argument("--txs", type=int, default=20_000, help="transactions per full-path run")
    ap.add_argument("--block", type=int, default=5_000, help="transactions per block")
    args = ap.parse_args()
    a = vm_alone(args.calls)
    a0 = vm_alone(args.calls, b"nothing")
    root = Path(tempfile.mkdtemp(prefix="bench-contracts-"))
    try:
        b, c = full_path(root, args.txs, args.block)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"(a) VM alone, token.lua transfer:        {a:>10,.0f} calls/s "
          f"(target {TARGET_VM:,}; ratio {a / TARGET_VM:.2f})")
    print(f"    VM alone, empty function:            {a0:>10,.0f} calls/s "
          f"(ratio {a0 / TARGET_VM:.2f})")
    print(f"(b) full path, contract transfer:        {b:>10,.0f} txs/s")
    print(f"(c) full path, native tokens/transfer:   {c:>10,.0f} txs/s")
    print(f"ratio b/c (contract vs native, same run): {b / c:.2f}")


if __name__ == "__main__":
    main()
