"""The devices module's wire types: payloads, stored records, signed bytes and constants.

Importable on their own (codec, crypto and shared types only), so a factory tool, an SDK or a
SmartAgent on a device can build certificates, proofs of possession and transactions without
the node.

Signed bytes (every signature is Ed25519 over a 32-byte BLAKE2b-256 digest personalised with a
domain tag, ``h256_tagged(tag, codec encoding of the body)``; the tags are at most 16 bytes, the
BLAKE2b personalisation size, so no two kinds of signed message can stand for each other):

- certificate, ``b"smart/dev/cert"`` over ``CertBody(manufacturer, device_pubkey, model, serial,
  capabilities)``: signed by the manufacturer's account key at the factory. No chain id: a
  certificate is burnt into the device once and is valid on any chain where its manufacturer
  registered.
- proof of possession, ``b"smart/dev/pop"`` over ``PopBody(chain_id, owner, device_pubkey)``:
  signed by the device key when it registers, so nobody registers a key they do not hold, and
  the proof cannot be replayed on another chain or for another owner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smartchain.codec import U64, U128, Bool, Fixed20, Fixed32, Fixed64, Str, Struct, list_of
from smartchain.crypto.hashing import h256_tagged
from smartchain.crypto.keys import PrivateKey

MODULE_ACCOUNT = h256_tagged(b"smart/module", b"devices")[:20]  # holds manufacturer deposits

CERT_TAG = b"smart/dev/cert"
POP_TAG = b"smart/dev/pop"

MAX_NAME = 64  # characters of a manufacturer's name, a model or a serial
MAX_CAPABILITIES = 16
MAX_CAPABILITY = 32  # characters of one capability
CAPABILITY_RE = re.compile(r"[a-z][a-z0-9_.\-]{0,31}")
SIGNATURE_GAS = 5_000  # each Ed25519 verification a handler runs

MANUFACTURER_PREFIX = b"devices/mfr/"  # + address -> Manufacturer
DEVICE_PREFIX = b"devices/dev/"  # + device pubkey -> Device
OWNER_PREFIX = b"devices/owner/"  # + owner address + device pubkey -> MARK
SERIAL_PREFIX = b"devices/serial/"  # + manufacturer + h256(model, serial) -> device pubkey
MARK = b"\x01"


# --- stored records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manufacturer(Struct):
    address: Fixed20
    pubkey: Fixed32  # its account key: certificates are signed with it
    name: Str
    deposit: U128  # locked in MODULE_ACCOUNT
    height: U64  # registered at
    devices: U64  # registered devices it certified


@dataclass(frozen=True, slots=True)
class Device(Struct):
    pubkey: Fixed32
    manufacturer: Fixed20
    owner: Fixed20
    model: Str
    serial: Str
    capabilities: list_of[Str]
    registered_height: U64
    revoked: Bool  # for ever: nothing the key signs is accepted again
    revoked_height: U64


# --- signed bodies ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertBody(Struct):
    manufacturer: Fixed20
    device_pubkey: Fixed32
    model: Str
    serial: Str
    capabilities: list_of[Str]


@dataclass(frozen=True, slots=True)
class PopBody(Struct):
    chain_id: Str
    owner: Fixed20
    device_pubkey: Fixed32


def certificate_bytes(manufacturer: bytes, device_pubkey: bytes, model: str, serial: str,
                      capabilities: list[str] | tuple[str, ...]) -> bytes:
    """What a manufacturer signs to certify a device (see the module docstring)."""
    body = CertBody(manufacturer, device_pubkey, model, serial, tuple(capabilities))
    return h256_tagged(CERT_TAG, body.encode())


def pop_bytes(chain_id: str, owner: bytes, device_pubkey: bytes) -> bytes:
    """What a device signs to prove it holds its key when ``owner`` registers it."""
    return h256_tagged(POP_TAG, PopBody(chain_id, owner, device_pubkey).encode())


def sign_certificate(manufacturer: PrivateKey, device_pubkey: bytes, model: str, serial: str,
                     capabilities: list[str] | tuple[str, ...]) -> bytes:
    """The manufacturer's certificate signature (64 bytes) for a device."""
    return manufacturer.sign(certificate_bytes(manufacturer.address, device_pubkey, model,
                                               serial, capabilities))


def sign_pop(device: PrivateKey, chain_id: str, owner: bytes) -> bytes:
    """The device's proof of possession (64 bytes) for registering under ``owner``."""
    return device.sign(pop_bytes(chain_id, owner, device.public_key))


# --- payloads -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterManufacturer(Struct):
    """Register the sender as a manufacturer (``pubkey`` is the sender's own key: it signs
    certificates) or top up its deposit (a second registration adds ``deposit``)."""

    name: Str
    pubkey: Fixed32
    deposit: U128


@dataclass(frozen=True, slots=True)
class RegisterDevice(Struct):
    """Register a certified device under ``owner`` (the sender)."""

    device_pubkey: Fixed32
    manufacturer: Fixed20
    model: Str
    serial: Str
    capabilities: list_of[Str]
    certificate: Fixed64  # the manufacturer's signature over ``certificate_bytes``
    owner: Fixed20
    pop: Fixed64  # the device's signature over ``pop_bytes``


@dataclass(frozen=True, slots=True)
class TransferDevice(Struct):
    device_pubkey: Fixed32
    new_owner: Fixed20


@dataclass(frozen=True, slots=True)
class RevokeDevice(Struct):
    """The manufacturer withdraws a certificate (recalled or cloned device): for ever."""

    device_pubkey: Fixed32


PAYLOADS: dict[str, type[Struct]] = {
    "devices/register_manufacturer": RegisterManufacturer,
    "devices/register": RegisterDevice,
    "devices/transfer": TransferDevice,
    "devices/revoke": RevokeDevice,
}
