"""The exceptions of the P2P transport, shared by its parts (re-exported by ``peers``)."""

from __future__ import annotations

from smartchain.p2p.framing import P2PError

__all__ = [
    "BadRequest",
    "DialError",
    "PeerBanned",
    "PeerNotConnected",
    "Refused",
    "RequestError",
    "RequestTimeout",
]


class BadRequest(ValueError):
    """Raised by a request handler when the request itself is invalid.

    The requester gets an error response *and* loses score, unlike any other handler
    exception, which only means we failed to serve it.
    """


class Refused(Exception):
    """Raised by a request handler that declines a valid request for an ordinary reason
    (full, busy): the requester gets "refused: …", loses no score, and nothing is logged as
    a failure (an honest client asking a full provider is not a bug on either side)."""


class PeerBanned(P2PError):
    """The peer id or address is banned for misbehaviour."""


class DialError(P2PError, ConnectionError):
    """The address could not be reached or refused us after the handshake."""


class RequestError(P2PError):
    """A request failed: the peer answered with an error or went away."""


class PeerNotConnected(RequestError, ConnectionError):
    """The peer is not (or no longer) connected. A ``RequestError`` so that callers of
    ``request`` handle every way a request can fail with one ``except``."""


class RequestTimeout(RequestError, TimeoutError):
    """No response within the request's timeout."""
