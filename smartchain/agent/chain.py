"""What the agent reads of the chain, checked: devices it may trust and its agreements.

The node's JSON is read in one place so the roles work on plain values. A device is trusted
only if the ``devices`` module has it registered, not revoked, and owned by the party the
agent expects (its own account for its device, the provider for a seller's readings); the
answer is cached for a few seconds, so a revocation takes effect within ``TRUST_TTL``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from smartchain.client import ApiError, Client

TRUST_TTL = 2.0


class Untrusted(ValueError):
    """A device the chain does not vouch for (unregistered, revoked, another owner's)."""


@dataclass(frozen=True, slots=True)
class AgreementView:
    id: int
    offer_id: int
    service_type: str
    token: str
    provider: str
    consumer: str
    provider_key: bytes
    consumer_key: bytes
    quantity: int
    price: int
    instalment_units: int
    counter: int  # the last countersigned counter the chain accepted
    status: str

    @property
    def open(self) -> bool:
        return self.status == "open"

    def names(self, side: str, address: str, agent_key: bytes) -> bool:
        """Is this agent (account ``address``, signing with ``agent_key``) the agreement's
        ``side`` ("provider" or "consumer")? An account may run one agent per device."""
        if side == "provider":
            return (self.provider, self.provider_key) == (address, agent_key)
        return (self.consumer, self.consumer_key) == (address, agent_key)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AgreementView:
        """From ``GET /v1/market/agreements/{id}`` (``market.queries.agreement_json``)."""
        return cls(int(doc["id"]), int(doc["offer_id"]), doc["service_type"], doc["token"],
                   doc["provider"], doc["consumer"], bytes.fromhex(doc["provider_key"]),
                   bytes.fromhex(doc["consumer_key"]), int(doc["quantity"]), int(doc["price"]),
                   int(doc["terms"]["instalment_units"]), int(doc["counter"]), doc["status"])


class DeviceTrust:
    """Is this device key one the chain vouches for, owned by ``owner``?"""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._cache: dict[bytes, tuple[float, dict[str, Any] | None]] = {}

    def check(self, device: bytes, owner: str | None) -> None:
        """Raise ``Untrusted`` with the reason, or return."""
        record = self._record(device)
        if record is None:
            raise Untrusted(f"device {device.hex()[:16]} is not registered on chain")
        if record.get("revoked"):
            raise Untrusted(f"device {device.hex()[:16]} has had its certificate revoked")
        if owner is not None and record.get("owner") != owner:
            raise Untrusted(f"device {device.hex()[:16]} belongs to {record.get('owner')}, "
                            f"not {owner}")

    def _record(self, device: bytes) -> dict[str, Any] | None:
        now = time.monotonic()
        hit = self._cache.get(device)
        if hit is not None and now - hit[0] < TRUST_TTL:
            return hit[1]
        try:
            record: dict[str, Any] | None = self.client.device(device)
        except ApiError as exc:
            if exc.code != "not_found":
                raise
            record = None
        self._cache[device] = (now, record)
        return record
