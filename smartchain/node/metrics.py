"""Prometheus metrics of one node (its own registry, so tests can run many nodes)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("smart_height", "Height of the latest committed block", registry=r)
        self.mempool_size = Gauge("smart_mempool_size", "Transactions in the mempool", registry=r)
        self.txs_per_second = Gauge(
            "smart_txs_per_second", "Transactions committed per second over the last block",
            registry=r)
        self.block_interval = Gauge(
            "smart_block_interval_seconds", "Time between the last two blocks", registry=r)
        self.txs_committed = Counter(
            "smart_txs_committed", "Transactions committed in blocks", registry=r)
        self.txs_rejected = Counter(
            "smart_txs_rejected", "Transactions refused before the mempool", ["code"], registry=r)
        self.gossip_unproven_checks = Counter(
            "smart_gossip_unproven_checks",
            "Signature checks spent on transaction gossip from unproven peers", registry=r)
        self.gossip_txs_unchecked = Counter(
            "smart_gossip_txs_unchecked",
            "Gossiped transactions from unproven peers dropped unchecked: over the check budget",
            registry=r)
        self.block_exec = Histogram(
            "smart_block_build_seconds", "Time to execute and commit a block", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

        # consensus: what the engine is deciding and how the signer sets behave
        self.consensus_height = Gauge(
            "smart_consensus_height", "Height the consensus engine is deciding", registry=r)
        self.consensus_round = Gauge(
            "smart_consensus_round", "Round of the height being decided", registry=r)
        self.consensus_signers = Gauge(
            "smart_consensus_signers", "Signers in the set of the next height", registry=r)
        self.consensus_is_signer = Gauge(
            "smart_consensus_is_signer", "1 when this node's key signs the next height",
            registry=r)
        self.consensus_missed_blocks = Counter(
            "smart_consensus_missed_blocks",
            "Committed blocks a signer of their set did not sign (from the next block's "
            "last commit), by signer public key (first 16 hex digits)", ["validator"],
            registry=r)
        self.consensus_jailed = Gauge(
            "smart_consensus_jailed", "Validator candidates jailed in committed state",
            registry=r)
        self.consensus_set_changes = Counter(
            "smart_consensus_set_changes",
            "Committed heights whose signer set differs from the height before", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
