"""The signature checks a node spends on transaction gossip from unproven peers.

Fresh identities are free and, with enough IP addresses, so are connections: whatever
each new identity may make the node verify before it is banned, an attacker gets once per
identity. So gossip from peers that have not proven themselves (see
``ConsensusService._on_txs``) shares one token bucket of ``rate`` checks per second
(burst: one second's worth), and inside it each peer has its own bucket of ``per_peer``,
so one flooding peer cannot take what other newcomers need. A check needs a token from
both (a costlier check, such as compiling a contract, several: at most a peer's share);
without one the transaction is dropped unchecked. The clock is the node's own
(monotonic nanoseconds): this is admission policy, not chain state; tokens are counted in
billionths, so refills are exact integers.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

MAX_TRACKED = 10_000  # peers remembered at once; a forgotten peer starts with a full share
ONE = 10**9  # a token in billionths: refilling ``rate`` per second is ``rate`` per nanosecond


class CheckBudget:
    """Two-level token bucket: shared ``rate`` per second, ``per_peer`` per peer."""

    def __init__(self, rate: int, per_peer: int, *,
                 clock: Callable[[], int] = time.monotonic_ns,
                 max_tracked: int = MAX_TRACKED) -> None:
        if rate < 1 or not 1 <= per_peer <= rate:
            raise ValueError("need rate >= 1 and 1 <= per_peer <= rate")
        self.rate = rate
        self.per_peer = per_peer
        self.clock = clock
        self.max_tracked = max_tracked
        self._shared = rate * ONE
        self._shared_at = clock()
        # peer -> (tokens, when), least recently charged first
        self._peers: OrderedDict[bytes, tuple[int, int]] = OrderedDict()

    def take(self, peer: bytes, checks: int = 1) -> bool:
        """``checks`` signature checks' worth of work for ``peer``'s gossip, if both buckets
        allow it (more than a peer's share counts as its whole share)."""
        now = self.clock()
        shared = min(self.rate * ONE, self._shared + (now - self._shared_at) * self.rate)
        mine = self._peer_tokens(peer, now)
        cost = min(checks, self.per_peer) * ONE
        ok = shared >= cost and mine >= cost
        if ok:
            shared -= cost
            mine -= cost
        self._shared, self._shared_at = shared, now
        self._peers.pop(peer, None)
        self._peers[peer] = (mine, now)
        self._forget_refilled(now)
        return ok

    def tracked(self) -> int:
        """Peers whose share is not full (what memory holds)."""
        return len(self._peers)

    def _peer_tokens(self, peer: bytes, now: int) -> int:
        entry = self._peers.get(peer)
        if entry is None:
            return self.per_peer * ONE
        tokens, at = entry
        return min(self.per_peer * ONE, tokens + (now - at) * self.per_peer)

    def _forget_refilled(self, now: int) -> None:
        """Drop the oldest entries once their share is full again (they hold nothing a new
        entry would not), and beyond ``max_tracked`` whatever is oldest."""
        peers = self._peers
        while peers:
            oldest = next(iter(peers))
            if len(peers) <= self.max_tracked and \
                    self._peer_tokens(oldest, now) < self.per_peer * ONE:
                return
            del peers[oldest]
