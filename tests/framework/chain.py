"""Chain-building helpers for the state-machine tests (no node process, no socket).

``ChainKit`` builds genesis documents, signed transfers and ``CheckedTx`` objects, and opens
``Chain`` instances under one directory; ``ChainNet`` drives one such chain with signed
transactions, one block per call, checking every module's invariants after each block.
The ``chainkit`` fixture (tests/conftest.py) gives a test a ``ChainKit`` in its tmp_path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from framework.checks import assert_invariants
from smartchain.app import open_chain
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.state.chain import Chain
from smartchain.state.executor import CheckedTx
from smartchain.state.genesis import Genesis, GenesisAccount, GenesisValidator
from smartchain.state.params import Params
from smartchain.types.tx import Receipt, Transaction

TEST_CHAIN_ID = "smart-test-1"
GENESIS_TIME_MS = 1_700_000_000_000


def _key_from_index(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i % 256]) * 32)


class ChainKit:
    """Helpers to build a genesis, sign transfers and open chains under one tmp dir."""

    chain_id = TEST_CHAIN_ID
    genesis_time_ms = GENESIS_TIME_MS

    def __init__(self, root: Path) -> None:
        self.root = root
        self._chains: list[Chain] = []
        self._n = 0

    def genesis(self, balances: dict[PrivateKey, int] | list[tuple[bytes, int]],
                *, chain_id: str = TEST_CHAIN_ID, params: Params | None = None,
                validator: PrivateKey | None = None) -> Genesis:
        if isinstance(balances, dict):
            accounts = tuple(GenesisAccount(k.address, b) for k, b in balances.items())
        else:
            accounts = tuple(GenesisAccount(a, b) for a, b in balances)
        validator = validator or _key_from_index(250)
        gen = Genesis(chain_id, GENESIS_TIME_MS, params or Params(), accounts,
                      (GenesisValidator(validator.public_key, 1, "v0"),))
        gen.validate()
        return gen

    def open(self, genesis: Genesis, path: Path | None = None) -> Chain:
        if path is None:
            self._n += 1
            path = self.root / f"chain{self._n}"
        chain = open_chain(path, genesis)
        self._chains.append(chain)
        return chain

    def close(self, chain: Chain) -> None:
        chain.close()
        self._chains.remove(chain)

    def transfer(self, key: PrivateKey, to: bytes, amount: int, nonce: int, *,
                 gas_limit: int = 100_000, gas_price: int = 1,
                 chain_id: str = TEST_CHAIN_ID) -> bytes:
        """Raw bytes of a signed bank/transfer."""
        tx = Transaction.create(key, chain_id=chain_id, nonce=nonce, kind="bank/transfer",
                                payload=Transfer(to, amount).encode(), gas_limit=gas_limit,
                                gas_price=gas_price)
        return tx.encode()

    @staticmethod
    def check(chain: Chain, raw: bytes) -> CheckedTx:
        """Every check a node runs on admission but the sender's signature (the tests sign
        validly): stateless ones, the signatures the payload carries, the costly ones."""
        checked = chain.executor.check_stateless(raw, Transaction.decode(raw), h256(raw),
                                                 chain.chain_id, chain.params)
        chain.executor.check_carried(checked, chain.chain_id)
        chain.executor.check_costly(checked)
        return checked

    @staticmethod
    def checked_of_block(chain: Chain, block_txs: tuple[bytes, ...]) -> list[CheckedTx]:
        return [ChainKit.check(chain, raw) for raw in block_txs]

    def close_all(self) -> None:
        for chain in self._chains:
            chain.close()
        self._chains.clear()


class ChainNet:
    """One chain driven by signed transactions: nonces tracked per key, one block per
    ``block`` call (``block_ms`` apart, built by ``proposer``). A message's kind comes from
    the chain's own registry, so tests name payloads, never kind strings."""

    block_ms = 1_000
    gas_limit = 2_000_000

    def __init__(self, kit: ChainKit, chain: Chain, proposer: PrivateKey) -> None:
        self.kit = kit
        self.chain = chain
        self.proposer = proposer
        self.nonces: dict[bytes, int] = {}
        self.blocks: list[Any] = []
        self.kinds = {m.payload: kind for kind, m in chain.executor.msgs.items()}

    def default_gas(self, kind: str) -> int:
        return self.gas_limit

    def sign(self, key: PrivateKey, msg: Any, *, gas_limit: int | None = None,
             gas_price: int = 1) -> bytes:
        kind = self.kinds[type(msg)]
        nonce = self.nonces.get(key.address, 0)
        self.nonces[key.address] = nonce + 1
        return Transaction.create(key, chain_id=self.kit.chain_id, nonce=nonce, kind=kind,
                                  payload=msg.encode(),
                                  gas_limit=gas_limit or self.default_gas(kind),
                                  gas_price=gas_price).encode()

    def block(self, *raws: bytes) -> list[Receipt]:
        checked = [self.kit.check(self.chain, raw) for raw in raws]
        time_ms = self.chain.next_time(
            self.kit.genesis_time_ms + self.block_ms * (self.chain.height + 1))
        block, receipts, skipped = self.chain.build_block(checked, time_ms, self.proposer)
        assert not skipped
        self.blocks.append(block)
        assert_invariants(self.chain)  # every module's books, every block
        self.on_block(checked, receipts)
        return receipts

    def on_block(self, checked: list[CheckedTx], receipts: list[Receipt]) -> None:
        """For subclasses that keep books of what each block did."""

    def send(self, key: PrivateKey, msg: Any, **kwargs: Any) -> Receipt:
        (receipt,) = self.block(self.sign(key, msg, **kwargs))
        return receipt

    def ok(self, key: PrivateKey, msg: Any, **kwargs: Any) -> Receipt:
        receipt = self.send(key, msg, **kwargs)
        assert receipt.ok, receipt.log
        return receipt

    def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self.chain.reader() as reader:
            return fn(reader, *args, **kwargs)

