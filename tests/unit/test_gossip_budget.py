"""The signature-check budget for transaction gossip from unproven peers
(smartchain/node/gossip_budget.py), on a clock the test moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartchain.node.config import ConfigError, NodeConfig, P2PSettings
from smartchain.node.gossip_budget import CheckBudget


class Clock:
    """Monotonic nanoseconds, moved by ``advance``."""

    def __init__(self) -> None:
        self.now = 10**12

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)


def granted(budget: CheckBudget, peer: bytes, wanted: int) -> int:
    return sum(budget.take(peer) for _ in range(wanted))


def peer(i: int) -> bytes:
    return i.to_bytes(32, "big")


def test_one_peer_gets_its_share_per_second_and_no_more() -> None:
    clock = Clock()
    budget = CheckBudget(1_000, 100, clock=clock)
    assert granted(budget, peer(1), 500) == 100
    clock.advance(0.5)
    assert granted(budget, peer(1), 500) == 50
    clock.advance(10)  # a full share at most, however long it waited
    assert granted(budget, peer(1), 500) == 100


def test_a_costlier_check_takes_several_tokens_and_at_most_a_peers_share() -> None:
    clock = Clock()
    budget = CheckBudget(1_000, 100, clock=clock)
    assert budget.take(peer(1), 60)
    assert not budget.take(peer(1), 60)  # 40 left: refused, and nothing taken
    assert budget.take(peer(1), 40)
    assert not budget.take(peer(1))
    assert budget.take(peer(2), 5_000)  # a check costlier than a share costs one share
    assert not budget.take(peer(2))
    clock.advance(1)
    assert budget.take(peer(2), 5_000)


def test_a_flooding_peer_leaves_the_other_newcomers_their_share() -> None:
    clock = Clock()
    budget = CheckBudget(1_000, 100, clock=clock)
    for _ in range(20):  # it asks again and again within the second
        granted(budget, peer(1), 2_000)
    assert [granted(budget, peer(i), 30) for i in range(2, 6)] == [30, 30, 30, 30]


def test_all_peers_together_get_at_most_the_shared_rate() -> None:
    clock = Clock()
    budget = CheckBudget(1_000, 100, clock=clock)
    total = 0
    for step in range(100):  # 10 s in 0.1 s steps, 50 new identities a step
        total += sum(granted(budget, peer(50 * step + i), 100) for i in range(50))
        clock.advance(0.1)
    # the burst (one second's worth) plus 1,000 per second, though 50,000 were asked for
    assert 10_000 <= total <= 1_000 + 10 * 1_000


def test_the_budget_refills_after_a_flood() -> None:
    clock = Clock()
    budget = CheckBudget(1_000, 100, clock=clock)
    for i in range(30):
        granted(budget, peer(i), 100)
    assert granted(budget, peer(99), 10) == 0  # spent
    clock.advance(0.05)
    assert granted(budget, peer(99), 100) == 50


def test_memory_holds_only_peers_whose_share_is_not_full() -> None:
    clock = Clock()
    budget = CheckBudget(10_000, 100, clock=clock, max_tracked=50)
    for i in range(200):
        budget.take(peer(i))
    assert budget.tracked() == 50  # the hard cap
    clock.advance(2)  # every share has refilled
    budget.take(peer(1_000))
    assert budget.tracked() == 1


@pytest.mark.parametrize(("rate", "per_peer"), [(0, 0), (100, 0), (100, 101)])
def test_impossible_budgets_are_refused(rate: int, per_peer: int, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="per_peer"):
        CheckBudget(rate, per_peer)
    NodeConfig(p2p=P2PSettings(unproven_sig_checks=rate, unproven_peer_sig_checks=per_peer)
               ).save(tmp_path)
    with pytest.raises(ConfigError, match="unproven_peer_sig_checks"):
        NodeConfig.load(tmp_path)


def test_the_default_budget_loads() -> None:
    cfg = NodeConfig()
    budget = CheckBudget(cfg.p2p.unproven_sig_checks, cfg.p2p.unproven_peer_sig_checks)
    assert budget.per_peer < budget.rate
