"""What travels inside an encrypted frame: one canonical ``Envelope`` per frame.

Every frame's plaintext is exactly one ``Envelope`` in the codec's canonical encoding, so
a malformed message is detected by one ``decode`` call and costs the sender peer score.
``kind`` says how the envelope is routed:

* ``GOSSIP`` / ``GOSSIP_PRIORITY``: a topic message for everybody. Its id is *derived* by
  the receiver (``gossip_id``: BLAKE2b over topic and payload) rather than carried, so a
  peer cannot make two different messages collide or one message look new. The priority
  kind keeps its class when relayed, so consensus traffic stays in the priority lane on
  every hop.
* ``DIRECT``: a topic message for one peer; never relayed, never de-duplicated.
* ``REQUEST`` / ``RESPONSE`` / ``ERROR``: ``topic`` names the request kind, ``req_id``
  matches a response to the caller's pending future; ``ERROR`` carries a UTF-8 reason.
* ``PEERS``: peer exchange, the payload is a ``PeerList`` of dialable addresses.
* ``PING``: keeps idle connections provably alive (a half-open TCP connection would
  otherwise look connected for ever and stop seed reconnection).
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U8, U64, Bytes, Str, Struct, list_of
from smartchain.crypto.hashing import h256_tagged

__all__ = [
    "ENVELOPE_OVERHEAD",
    "MAX_PEX_ADDRESSES",
    "MAX_TOPIC_LEN",
    "Envelope",
    "Kind",
    "PeerList",
    "format_address",
    "gossip_id",
    "parse_address",
]

MAX_TOPIC_LEN = 128  # topics and request kinds are short names, not payload
MAX_PEX_ADDRESSES = 256  # more than a node would ever need to bootstrap from one peer
MAX_ADDRESS_LEN = 300
# kind (1) + topic length (4) + topic + req_id (8) + payload length (4)
ENVELOPE_OVERHEAD = 1 + 4 + MAX_TOPIC_LEN + 8 + 4


class Kind:
    """Envelope kinds: plain ints, because the codec encodes exactly ``int`` (not enums)."""

    GOSSIP = 1
    GOSSIP_PRIORITY = 2
    DIRECT = 3
    REQUEST = 4
    RESPONSE = 5
    ERROR = 6
    PEERS = 7
    PING = 8


@dataclass(frozen=True, slots=True)
class Envelope(Struct):
    kind: U8
    topic: Str  # gossip/direct topic or request kind; "" otherwise
    req_id: U64  # request/response correlation; 0 otherwise
    payload: Bytes


@dataclass(frozen=True, slots=True)
class PeerList(Struct):
    addresses: list_of[Str]  # "pubkeyhex@host:port"


_GOSSIP_TAG = b"sc-p2p-gossip"


def gossip_id(topic: str, payload: bytes) -> bytes:
    """The de-duplication id of a gossip message, identical on every node.

    The topic is length-prefixed so (topic, payload) pairs cannot be shifted into each
    other ("ab"+"c" vs "a"+"bc").
    """
    t = topic.encode("utf-8")
    return h256_tagged(_GOSSIP_TAG, len(t).to_bytes(4, "big"), t, payload)


def parse_address(address: str) -> tuple[bytes, str, int]:
    """Split ``"pubkeyhex@host:port"`` (IPv6 hosts in brackets) into its parts.

    The public key is mandatory: it is what the dialer authenticates the remote end
    against, so an address without one could be answered by anybody.
    """
    if not isinstance(address, str) or len(address) > MAX_ADDRESS_LEN:
        raise ValueError("peer address must be a short string")
    key_hex, sep, hostport = address.partition("@")
    if not sep:
        raise ValueError(f"peer address needs a public key: {address!r} (pubkeyhex@host:port)")
    if len(key_hex) != 64:
        raise ValueError(f"peer public key must be 64 hex characters: {address!r}")
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        raise ValueError(f"peer public key is not hex: {address!r}") from None
    host, sep, port_s = hostport.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise ValueError(f"peer address needs host:port: {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_s)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {address!r}")
    return key, host, port


def format_address(public_key: bytes, host: str, port: int) -> str:
    """Inverse of ``parse_address``."""
    if ":" in host:
        host = f"[{host}]"
    return f"{public_key.hex()}@{host}:{port}"
