"""SDK methods of the devices module: manufacturers, certified devices, owners, revocation.

The signed bytes (certificates, proofs of possession) are built by ``devices.types``
(``sign_certificate``, ``sign_pop``), so a factory tool or an agent signs without a node.
"""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import from_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.devices.types import (
    RegisterDevice,
    RegisterManufacturer,
    RevokeDevice,
    TransferDevice,
    sign_pop,
)
from smartchain.modules.sdk import ModuleSdk, seg


class DevicesSdk(ModuleSdk):
    """Device identity reads and transactions; deposits in HPC base units."""

    def manufacturer(self, address: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/devices/manufacturers/{seg(address)}")

    def device(self, device_pubkey: bytes | str) -> dict[str, Any]:
        """A device by its public key (bytes or 64 hex characters)."""
        hexkey = device_pubkey.hex() if isinstance(device_pubkey, bytes) else device_pubkey
        return self._request("GET", f"/v1/devices/keys/{seg(hexkey)}")

    def devices_of(self, owner: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/v1/devices/owners/{seg(owner)}")["devices"]

    def register_manufacturer(self, key: PrivateKey, name: str, deposit: int, *,
                              gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Register this key's account as a manufacturer (its key signs certificates), or
        add ``deposit`` to an existing registration."""
        return self.send_tx(key, "devices/register_manufacturer",
                            RegisterManufacturer(name, key.public_key, deposit),
                            gas_limit=gas_limit, **kwargs)

    def register_device(self, key: PrivateKey, device_pubkey: bytes, manufacturer: str,
                        model: str, serial: str, capabilities: list[str] | tuple[str, ...],
                        certificate: bytes, pop: bytes, *, gas_limit: int | None = None,
                        **kwargs: Any) -> dict[str, Any]:
        """Register a certified device owned by this key's account; ``pop`` is the device's
        ``sign_pop(device_key, chain_id, owner)``."""
        msg = RegisterDevice(device_pubkey, from_bech32(manufacturer), model, serial,
                             tuple(capabilities), certificate, key.address, pop)
        return self.send_tx(key, "devices/register", msg, gas_limit=gas_limit, **kwargs)

    def register_own_device(self, key: PrivateKey, device: PrivateKey, chain_id: str,
                            manufacturer: str, model: str, serial: str,
                            capabilities: list[str] | tuple[str, ...], certificate: bytes,
                            **kwargs: Any) -> dict[str, Any]:
        """``register_device`` when this process holds the device key too (an agent)."""
        return self.register_device(key, device.public_key, manufacturer, model, serial,
                                    capabilities, certificate,
                                    sign_pop(device, chain_id, key.address), **kwargs)

    def transfer_device(self, key: PrivateKey, device_pubkey: bytes, new_owner: str, *,
                        gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "devices/transfer",
                            TransferDevice(device_pubkey, from_bech32(new_owner)),
                            gas_limit=gas_limit, **kwargs)

    def revoke_device(self, key: PrivateKey, device_pubkey: bytes, *,
                      gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Withdraw a certificate (manufacturer only): the chain refuses the device for ever."""
        return self.send_tx(key, "devices/revoke", RevokeDevice(device_pubkey),
                            gas_limit=gas_limit, **kwargs)
