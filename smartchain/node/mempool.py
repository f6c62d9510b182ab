"""The mempool: checked transactions waiting for a block.

Per sender, transactions form a gap-free run of nonces starting at the account's nonce,
and together can never spend more than the account holds (fees plus what the messages
move), so every admitted transaction is executable when its turn comes. Blocks take the
best-paying sender head first (gas price, then arrival), which keeps each sender's order.
When full, a new transaction must outbid the cheapest sender *tail* to evict it; a tail,
because evicting from the middle would leave a gap.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from smartchain.state.executor import CheckedTx
from smartchain.types.errors import Code, TxError

AccountLookup = Callable[[bytes], tuple[int, int]]  # address -> (balance, nonce)


@dataclass(slots=True)
class SenderQueue:
    """A sender's pending run; admission checks against the balance and nonce the queue was
    last synced with, so a block committing in the background cannot skew the check."""

    base_nonce: int
    base_balance: int
    txs: list[CheckedTx] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    spend: int = 0

    @property
    def next_nonce(self) -> int:
        return self.base_nonce + len(self.txs)


class Mempool:
    def __init__(self, max_txs: int = 100_000, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.by_hash: dict[bytes, CheckedTx] = {}
        self.queues: dict[bytes, SenderQueue] = {}
        self.bytes = 0
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self.by_hash)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self.by_hash

    def pending_nonce(self, address: bytes) -> int | None:
        q = self.queues.get(address)
        return q.next_nonce if q else None

    def add(self, ctx: CheckedTx, lookup: AccountLookup,
            costly: Callable[[CheckedTx], None] | None = None) -> None:
        """Admit a checked, signature-verified transaction or raise ``TxError``. ``costly``
        (``Executor.check_costly``) runs last, once nonce and funds show the sender can pay:
        a fresh key cannot make the node compile a contract for free."""
        if ctx.hash in self.by_hash:
            raise TxError(Code.DUPLICATE, "transaction already in the mempool")
        q = self.queues.get(ctx.sender)
        if q is None:
            balance, nonce = lookup(ctx.sender)
            q = SenderQueue(nonce, balance)
        balance = q.base_balance
        expected = q.next_nonce
        n = ctx.tx.nonce
        if n < expected:
            raise TxError(Code.NONCE_REUSED, f"nonce {n} already used; next is {expected}")
        if n > expected:
            raise TxError(Code.NONCE_SKIPPED, f"nonce {n} skips ahead; next is {expected}")
        if q.spend + ctx.spend > balance:
            raise TxError(Code.INSUFFICIENT_FUNDS,
                          f"insufficient funds: {balance} available, {q.spend} already pending, "
                          f"this transaction needs {ctx.spend} (amount + maximum fee)")
        if costly is not None:
            costly(ctx)
        if len(self.by_hash) >= self.max_txs or self.bytes + len(ctx.raw) > self.max_bytes:
            self._evict_for(ctx)
        if not q.txs:
            self.queues[ctx.sender] = q
        q.txs.append(ctx)
        q.seqs.append(next(self._seq))
        q.spend += ctx.spend
        self.by_hash[ctx.hash] = ctx
        self.bytes += len(ctx.raw)

    def _evict_for(self, ctx: CheckedTx) -> None:
        victim: bytes | None = None
        worst: tuple[int, int] | None = None
        for sender, q in self.queues.items():
            if sender == ctx.sender:
                continue
            key = (q.txs[-1].tx.gas_price, -q.seqs[-1])
            if worst is None or key < worst:
                worst, victim = key, sender
        if victim is None or worst is None or worst[0] >= ctx.tx.gas_price:
            raise TxError(Code.MEMPOOL_FULL, "mempool full: raise the gas price to get in")
        self._pop_tail(victim)

    def _pop_tail(self, sender: bytes) -> None:
        q = self.queues[sender]
        ctx = q.txs.pop()
        q.seqs.pop()
        q.spend -= ctx.spend
        self._forget(ctx)
        if not q.txs:
            del self.queues[sender]

    def _forget(self, ctx: CheckedTx) -> None:
        del self.by_hash[ctx.hash]
        self.bytes -= len(ctx.raw)

    def reap(self) -> Iterator[CheckedTx]:
        """Transactions in block order: best head first, each sender's nonces in order."""
        heap = [(-q.txs[0].tx.gas_price, q.seqs[0], sender, 0) for sender, q in
                self.queues.items()]
        heapq.heapify(heap)
        queues = self.queues
        while heap:
            _, _, sender, i = heap[0]
            q = queues[sender]
            yield q.txs[i]
            if i + 1 < len(q.txs):
                heapq.heapreplace(heap, (-q.txs[i + 1].tx.gas_price, q.seqs[i + 1], sender, i + 1))
            else:
                heapq.heappop(heap)

    def update(self, committed: list[CheckedTx], dropped: list[CheckedTx],
               lookup: AccountLookup) -> None:
        """After a block: drop what it included or refused, re-sync touched senders. A
        refused transaction goes even if its nonce is still next (one whose execution
        raised: kept, it would be staged and refused again in every block)."""
        touched: set[bytes] = set()
        for ctx in committed:
            touched.add(ctx.sender)
        refused = {ctx.hash for ctx in dropped}
        for ctx in dropped:
            touched.add(ctx.sender)
        for sender in sorted(touched):
            q = self.queues.get(sender)
            if q is None:
                continue
            balance, nonce = lookup(sender)
            kept: list[CheckedTx] = []
            seqs: list[int] = []
            spend = 0
            for ctx, seq in zip(q.txs, q.seqs, strict=True):
                if (ctx.hash not in refused and ctx.tx.nonce == nonce + len(kept)
                        and spend + ctx.spend <= balance):
                    kept.append(ctx)
                    seqs.append(seq)
                    spend += ctx.spend
                else:
                    self._forget(ctx)
            if kept:
                self.queues[sender] = SenderQueue(nonce, balance, kept, seqs, spend)
            else:
                del self.queues[sender]
