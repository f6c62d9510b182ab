"""Metric families read from the node when Prometheus scrapes: build info, consensus, P2P,
compute and storage. Read at scrape time (a collector), so no code path the chain runs
has to remember to update them."""

from __future__ import annotations

import platform
import weakref
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from smartchain import __version__
from smartchain.modules.compute.types import JOB_QUEUE_PREFIX
from smartchain.modules.compute.types import PROVIDER_PREFIX as COMPUTE_PROVIDERS
from smartchain.modules.storage.types import LIVE_PREFIX
from smartchain.modules.storage.types import PROVIDER_PREFIX as STORAGE_PROVIDERS
from smartchain.node.node import Node
from smartchain.state.store import StateReader

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text format
MAX_COUNT = 100_000  # a scrape counts at most this many entries of one kind
_REGISTERED: weakref.WeakSet[CollectorRegistry] = weakref.WeakSet()


class NodeCollector(Collector):
    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        yield InfoMetricFamily("smart_build", "Version of the node software",
                               value={"version": __version__,
                                      "python": platform.python_version()})
        chain = node.chain
        yield _gauge("smart_consensus_height", "Height of the latest committed block",
                     chain.height)
        yield _gauge("smart_consensus_synced", "1 when caught up with peers (GET /ready)",
                     int(node.synced()))
        yield _gauge("smart_consensus_signer", "1 when this node signs blocks",
                     int(node.is_signer))
        yield _gauge("smart_p2p_peers", "Peers connected", node.peer_count())
        with chain.reader() as reader:
            counts = {name: _count(reader, prefix) for name, prefix in (
                ("compute_providers", COMPUTE_PROVIDERS), ("compute_jobs_queued",
                                                           JOB_QUEUE_PREFIX),
                ("storage_providers", STORAGE_PROVIDERS), ("storage_deals_active",
                                                           LIVE_PREFIX))}
        yield _gauge("smart_compute_providers", "Registered compute providers",
                     counts["compute_providers"])
        yield _gauge("smart_compute_jobs_queued", "Compute jobs waiting for providers",
                     counts["compute_jobs_queued"])
        yield _gauge("smart_storage_providers", "Registered storage providers",
                     counts["storage_providers"])
        yield _gauge("smart_storage_deals_active", "Storage deals being audited",
                     counts["storage_deals_active"])


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _count(reader: StateReader, prefix: bytes) -> int:
    n = 0
    for _ in reader.iter_prefix(prefix):
        n += 1
        if n >= MAX_COUNT:
            break
    return n


def register(node: Node) -> None:
    """Add the families to the node's registry, once (an app may be built twice)."""
    if node.metrics.registry in _REGISTERED:
        return
    node.metrics.registry.register(NodeCollector(node))
    _REGISTERED.add(node.metrics.registry)
