"""SDK methods of the storage module: the chain side of deals and providers."""

from __future__ import annotations

import urllib.parse
from typing import Any

from smartchain.crypto.keys import PrivateKey
from smartchain.modules.sdk import ApiError, ModuleSdk, seg
from smartchain.modules.storage.types import CancelDeal, Deal, DealView, StorageProvider
from smartchain.modules.storage.types import ProviderView as StorageProviderView
from smartchain.modules.storage.types import RegisterProvider as RegisterStorageProvider


class StorageSdk(ModuleSdk):
    """Storage reads and transactions."""

    # Uploads and downloads talk to providers over P2P: ``smartchain.storage.client``
    # (``ApiChainView`` wraps this client for it). These are the chain-side reads and writes.

    def storage_providers(self, *, raw: bool = False) -> list[dict[str, Any]]:
        """Every registered storage provider (active or not), in address order."""
        return self._request("GET", "/v1/storage/providers" + _raw(raw))["providers"]

    def storage_provider(self, address: str, *, raw: bool = False) -> dict[str, Any]:
        return self._request("GET", f"/v1/storage/providers/{seg(address)}{_raw(raw)}")

    def storage_challenges(self, address: str) -> list[dict[str, Any]]:
        """Audit challenges the provider must answer this epoch."""
        path = f"/v1/storage/providers/{seg(address)}/challenges"
        return self._request("GET", path)["challenges"]

    def storage_deal(self, file_id: str | bytes, *, raw: bool = False) -> dict[str, Any]:
        """A deal's terms, escrow and columns; ``ApiError`` ``not_found`` when there is none."""
        fid = file_id.hex() if isinstance(file_id, bytes) else file_id
        return self._request("GET", f"/v1/storage/deals/{seg(fid)}{_raw(raw)}")

    def storage_deals(self, owner: str, *, raw: bool = False) -> list[dict[str, Any]]:
        """Every deal ``owner`` made (active, ended or cancelled), in file id order."""
        query = urllib.parse.urlencode({"owner": owner, **({"raw": "1"} if raw else {})})
        return self._request("GET", f"/v1/storage/deals?{query}")["deals"]

    def storage_repairs(self) -> list[dict[str, Any]]:
        """Active deals with fewer healthy columns than their repair threshold."""
        return self._request("GET", "/v1/storage/repairs")["deals"]

    def storage_provider_records(self) -> list[tuple[bytes, StorageProvider]]:
        """Every provider as the module's own record (decoded from ``?raw=1``)."""
        out = []
        for doc in self.storage_providers(raw=True):
            v = StorageProviderView.decode(bytes.fromhex(doc["raw"]))
            out.append((v.address, v.provider))
        return out

    def storage_deal_record(self, file_id: bytes) -> Deal | None:
        """The deal as the module's own record, or ``None`` when there is none."""
        try:
            doc = self.storage_deal(file_id, raw=True)
        except ApiError as exc:
            if exc.code == "not_found":
                return None
            raise
        return DealView.decode(bytes.fromhex(doc["raw"])).deal

    def register_storage_provider(self, key: PrivateKey, capacity: int, price: int,
                                  bandwidth_price: int, collateral: int, p2p: str, *,
                                  gas_limit: int | None = None, **kwargs: Any
                                  ) -> dict[str, Any]:
        """Offer ``capacity`` bytes at ``price`` base units per GiB per epoch (and
        ``bandwidth_price`` per GiB served), locking ``collateral`` (added to any already
        locked). ``p2p`` is the node's dialable address (``P2P.address``)."""
        payload = RegisterStorageProvider(capacity, price, bandwidth_price, collateral, p2p,
                                          key.public_key)
        return self.send_tx(key, "storage/register_provider", payload,
                            gas_limit=gas_limit, **kwargs)

    def cancel_storage_deal(self, key: PrivateKey, file_id: bytes, *,
                            gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """End a deal early (owner only): the current epoch stays payable, escrow and repair
        budget left come back."""
        return self.send_tx(key, "storage/cancel_deal", CancelDeal(file_id),
                            gas_limit=gas_limit, **kwargs)


def _raw(flag: bool) -> str:
    return "?raw=1" if flag else ""
