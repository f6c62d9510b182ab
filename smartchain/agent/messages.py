"""What devices say on MQTT: readings and usage signed by the device's own key.

A device publishes ``sign_message(key, kind, seq, body)`` (64 bytes of Ed25519 signature,
then the canonical encoding of a ``DeviceMessage``). The signature covers a domain tag and
every field, so a message cannot be replayed as another kind or passed off as another
device's; ``seq`` grows by one per message of a device, so a replayed or reordered one is
seen. ``body`` is JSON text the device and its buyers agree on (a weather reading, a parking
minute); the agent meters messages, it does not interpret them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from smartchain.codec import U64, CodecError, Fixed32, Str, Struct
from smartchain.crypto.keys import PrivateKey, verify

DOMAIN = b"smartchain/device-message/v1\x00"
SIGNATURE_SIZE = 64
MAX_MESSAGE = 64 * 1024


class BadMessage(ValueError):
    """A message an agent drops: malformed, or its signature does not verify."""


@dataclass(frozen=True, slots=True)
class DeviceMessage(Struct):
    device: Fixed32  # the device's Ed25519 public key (as certified on chain)
    kind: Str  # "reading", "usage", "leave", ...
    seq: U64  # 1, 2, 3, ... per device
    body: Str  # JSON text

    def data(self) -> Any:
        return json.loads(self.body)


def signing_bytes(msg: DeviceMessage) -> bytes:
    return DOMAIN + msg.encode()


def sign_message(key: PrivateKey, kind: str, seq: int, body: Any) -> bytes:
    """The wire form of a message from the device holding ``key``."""
    msg = DeviceMessage(key.public_key, kind, seq, json.dumps(body, sort_keys=True))
    return key.sign(signing_bytes(msg)) + msg.encode()


def open_message(raw: bytes) -> DeviceMessage:
    """The message in ``raw`` if its signature is the device's own; ``BadMessage`` if not.

    Whether the device is registered and its certificate still valid is the chain's to say
    (``DeviceCheck``): this only proves who wrote it."""
    if len(raw) > MAX_MESSAGE:
        raise BadMessage(f"message of {len(raw)} bytes (at most {MAX_MESSAGE})")
    if len(raw) <= SIGNATURE_SIZE:
        raise BadMessage("message too short to be signed")
    sig, rest = raw[:SIGNATURE_SIZE], raw[SIGNATURE_SIZE:]
    try:
        msg = DeviceMessage.decode(rest)
    except CodecError as exc:
        raise BadMessage(f"malformed message: {exc}") from None
    # ``rest`` is ``msg.encode()`` (the codec has one encoding per value): no re-encoding
    if not verify(msg.device, DOMAIN + rest, sig):
        raise BadMessage(f"bad signature on a message claiming device {msg.device.hex()[:16]}")
    try:
        json.loads(msg.body)
    except ValueError:
        raise BadMessage("message body is not JSON") from None
    return msg
