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

    def render(self) -> bytes:
        return generate_latest(self.registry)
