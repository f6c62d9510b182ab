"""SDK methods of the data module: assets and batches, consents, purchases, key delivery,
wrong-key proofs, box keys and shares.

The buyer's box keys are derived from its account seed and the purchase's nonce
(``types.box_secret``), so a buyer opens its keys, or proves one wrong, from its keystore
alone. Prices are base units of the consent's token.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from smartchain.crypto.address import from_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.data.types import (
    AddBatch,
    BatchHeader,
    Buy,
    CreateAsset,
    Deliver,
    GiveConsent,
    ProveWrongKey,
    SetBoxKey,
    ShareFile,
    WithdrawConsent,
    account_box_secret,
    box_public,
    box_secret,
    purchase_label,
)
from smartchain.modules.sdk import ModuleSdk, seg


def purchase_secret(key: PrivateKey, nonce: bytes, position: int) -> bytes:
    """The buyer's one-use X25519 secret for batch ``position`` of a purchase."""
    return box_secret(key.seed, purchase_label(nonce, position))


class DataSdk(ModuleSdk):
    """Data assets: sell device data with consent; buy, receive and check keys."""

    # --- reads ---------------------------------------------------------------------------

    def data_asset(self, asset_id: bytes | str) -> dict[str, Any]:
        hexid = asset_id.hex() if isinstance(asset_id, bytes) else asset_id
        return self._request("GET", f"/v1/data/assets/{seg(hexid)}")

    def data_search(self, *, schema: str = "", model: str = "", region: str = "",
                    from_ms: int | None = None, to_ms: int | None = None,
                    max_price: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Assets on offer now (open, unexpired consents) matching every filter given."""
        query = {"schema": schema, "model": model, "region": region, "limit": str(limit),
                 "height": str(self.status()["height"])}
        for name, value in (("from_ms", from_ms), ("to_ms", to_ms), ("max_price", max_price)):
            if value is not None:
                query[name] = str(value)
        return self._request("GET", "/v1/data/assets?" + urllib.parse.urlencode(
            {k: v for k, v in query.items() if v}))["assets"]

    def data_assets_of(self, owner: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/v1/data/owners/{seg(owner)}/assets")["assets"]

    def data_consent(self, consent_id: int) -> dict[str, Any]:
        return self._request("GET", f"/v1/data/consents/{int(consent_id)}")

    def data_purchase(self, purchase_id: int) -> dict[str, Any]:
        return self._request("GET", f"/v1/data/purchases/{int(purchase_id)}")

    def data_purchases_of(self, buyer: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/v1/data/buyers/{seg(buyer)}/purchases")["purchases"]

    def data_waiting_sales(self, owner: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/v1/data/owners/{seg(owner)}/waiting")["purchases"]

    def data_box_key(self, address: str) -> bytes:
        return bytes.fromhex(self._request("GET", f"/v1/data/box_keys/{seg(address)}")[
            "box_key"])

    def data_share(self, file_id: bytes, recipient: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/data/shares/{file_id.hex()}/{seg(recipient)}")

    # --- writes --------------------------------------------------------------------------

    def create_data_asset(self, key: PrivateKey, name: str, schema: str, region: str,
                          devices: list[bytes] | tuple[bytes, ...], bond: int,
                          **kwargs: Any) -> dict[str, Any]:
        """A data asset of this account's devices with ``bond`` HPC locked (again with the
        same name and terms: a top-up)."""
        return self.send_tx(key, "data/create_asset",
                            CreateAsset(name, schema, region, tuple(devices), bond), **kwargs)

    def add_data_batch(self, key: PrivateKey, asset_id: bytes, header: BatchHeader,
                       signature: bytes, file_id: bytes, commitment: bytes,
                       **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "data/add_batch",
                            AddBatch(asset_id, header, signature, file_id, commitment), **kwargs)

    def give_consent(self, key: PrivateKey, assets: list[bytes], purposes: list[str],
                     price: int, expiry: int, *, buyers: list[str] | tuple[str, ...] = (),
                     token: str = "HPC", **kwargs: Any) -> dict[str, Any]:
        """Offer ``assets`` to ``buyers`` (none: anyone) for ``purposes`` at ``price`` per
        batch until height ``expiry``."""
        msg = GiveConsent(tuple(assets), tuple(from_bech32(b) for b in buyers),
                          tuple(purposes), price, token, expiry)
        return self.send_tx(key, "data/consent", msg, **kwargs)

    def withdraw_consent(self, key: PrivateKey, consent_id: int,
                         **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "data/withdraw_consent", WithdrawConsent(consent_id), **kwargs)

    def buy_data(self, key: PrivateKey, consent_id: int, asset_id: bytes,
                 batches: list[int] | tuple[int, ...], purpose: str, max_total: int, *,
                 token: str = "HPC", **kwargs: Any) -> dict[str, Any]:
        """Pay ``max_total`` at most into escrow for ``batches`` of an asset; the box keys
        are derived from this key's seed and a fresh nonce kept in the purchase."""
        nonce = os.urandom(16)
        keys = tuple(box_public(purchase_secret(key, nonce, i)) for i in range(len(batches)))
        msg = Buy(consent_id, asset_id, tuple(batches), purpose, token, max_total, nonce, keys)
        return self.send_tx(key, "data/buy", msg, **kwargs)

    def deliver_data_keys(self, key: PrivateKey, purchase: dict[str, Any],
                          sealed: list[bytes], **kwargs: Any) -> dict[str, Any]:
        msg = Deliver(int(purchase["id"]), from_bech32(purchase["buyer"]),
                      tuple(bytes.fromhex(k) for k in purchase["box_keys"]), tuple(sealed))
        return self.send_tx(key, "data/deliver", msg, **kwargs)

    def prove_wrong_key(self, key: PrivateKey, purchase: dict[str, Any], position: int,
                        **kwargs: Any) -> dict[str, Any]:
        """Reveal batch ``position``'s one-use secret: the chain opens the box itself."""
        secret = purchase_secret(key, bytes.fromhex(purchase["nonce"]), position)
        return self.send_tx(key, "data/prove_wrong_key",
                            ProveWrongKey(int(purchase["id"]), position, secret), **kwargs)

    def register_box_key(self, key: PrivateKey, **kwargs: Any) -> dict[str, Any]:
        """Publish this account's X25519 key (derived from its seed) so files can be shared
        with it."""
        return self.send_tx(key, "data/set_box_key",
                            SetBoxKey(box_public(account_box_secret(key))), **kwargs)

    def share_file_key(self, key: PrivateKey, file_id: bytes, recipient: str, sealed: bytes,
                       **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "data/share", ShareFile(file_id, from_bech32(recipient),
                                                         sealed), **kwargs)
