"""Peer-to-peer networking: transport, peers, DHT, gossip, request/response, block sync.

The transport (``handshake``, ``framing``, ``messages``, ``peers``) is re-exported here:
nodes and subsystems use ``P2P`` and its exceptions, nothing below it.
"""

from smartchain.p2p.framing import P2PError
from smartchain.p2p.handshake import HandshakeError
from smartchain.p2p.messages import format_address, parse_address
from smartchain.p2p.peers import (
    P2P,
    BadRequest,
    DialError,
    GossipHandler,
    P2PConfig,
    PeerBanned,
    PeerNotConnected,
    Penalty,
    Refused,
    RequestError,
    RequestHandler,
    RequestTimeout,
)

__all__ = [
    "P2P",
    "BadRequest",
    "DialError",
    "GossipHandler",
    "HandshakeError",
    "P2PConfig",
    "P2PError",
    "PeerBanned",
    "PeerNotConnected",
    "Penalty",
    "Refused",
    "RequestError",
    "RequestHandler",
    "RequestTimeout",
    "format_address",
    "parse_address",
]
