"""Encrypted, authenticated frames over an asyncio stream, after the handshake.

Wire format of one frame: a 4-byte big-endian length ``n`` and ``n`` bytes of
ChaCha20-Poly1305 (IETF, libsodium) ciphertext+tag of one plaintext message.

* Each direction has its own key (from the handshake) and its own 64-bit frame counter,
  used as the nonce. A (key, nonce) pair is therefore never used twice, and a frame that is
  replayed, dropped, reordered or altered on the wire fails authentication at the
  receiver, which closes the connection. The counter is never allowed to wrap: the
  connection fails first (at 2^64 - 1 frames, which no real connection reaches).
* The length prefix is not separately authenticated: changing it changes which bytes are
  taken as the ciphertext, which then fails authentication (or exceeds the size limit and
  is rejected before any body is read, so a peer cannot make us buffer more than
  ``max_frame`` plus the tag).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time

import nacl.bindings as _nb
from nacl.exceptions import CryptoError

__all__ = [
    "TAG_SIZE",
    "ConnectionClosed",
    "FrameCorrupt",
    "FrameError",
    "FrameTooLarge",
    "FrameTruncated",
    "P2PError",
    "SecureChannel",
]

TAG_SIZE = _nb.crypto_aead_chacha20poly1305_ietf_ABYTES  # 16
KEY_SIZE = _nb.crypto_aead_chacha20poly1305_ietf_KEYBYTES  # 32
_MAX_COUNTER = (1 << 64) - 1
_LEN = struct.Struct(">I")
_NONCE = struct.Struct(">4xQ")  # 96-bit IETF nonce: 32 zero bits + 64-bit counter
_encrypt = _nb.crypto_aead_chacha20poly1305_ietf_encrypt
_decrypt = _nb.crypto_aead_chacha20poly1305_ietf_decrypt


class P2PError(Exception):
    """Base of every error the p2p layer raises on purpose."""


class FrameError(P2PError):
    """The peer broke the framing protocol; the connection cannot continue."""


class FrameTooLarge(FrameError):
    pass


class FrameTruncated(FrameError):
    pass


class FrameCorrupt(FrameError):
    pass


class ConnectionClosed(P2PError):
    """Clean end of stream at a frame boundary (not the peer's fault)."""


class SecureChannel:
    """One authenticated connection: seals outgoing and opens incoming frames.

    ``seal`` must be called in wire order (one writer task per channel does so), since
    the nonce is the position of the frame in its direction.
    """

    __slots__ = (
        "_recv_key",
        "_recv_n",
        "_send_key",
        "_send_n",
        "body_since",
        "initiator",
        "max_frame",
        "peer_id",
        "peer_listen_port",
        "reader",
        "transcript",
        "writer",
    )

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 send_key: bytes, recv_key: bytes, peer_id: bytes, initiator: bool,
                 peer_listen_port: int, max_frame: int, transcript: bytes = b"") -> None:
        if len(send_key) != KEY_SIZE or len(recv_key) != KEY_SIZE or send_key == recv_key:
            raise ValueError("two distinct 32-byte direction keys are required")
        self.reader = reader
        self.writer = writer
        self._send_key = send_key
        self._recv_key = recv_key
        self._send_n = 0
        self._recv_n = 0
        self.peer_id = peer_id
        self.initiator = initiator
        self.peer_listen_port = peer_listen_port
        self.max_frame = max_frame
        self.transcript = transcript
        self.body_since = 0.0  # monotonic time a frame body started arriving; 0 = idle

    def seal(self, plaintext: bytes) -> bytes:
        """Length prefix + ciphertext of the next outgoing frame."""
        n = self._send_n
        if n >= _MAX_COUNTER:
            raise FrameError("send counter exhausted; the connection must be replaced")
        if len(plaintext) > self.max_frame:
            raise FrameTooLarge(f"frame of {len(plaintext)} bytes exceeds {self.max_frame}")
        self._send_n = n + 1
        ct = _encrypt(plaintext, None, _NONCE.pack(n), self._send_key)
        return _LEN.pack(len(ct)) + ct

    def open(self, ciphertext: bytes) -> bytes:
        """Authenticate and decrypt the next incoming frame body."""
        n = self._recv_n
        if n >= _MAX_COUNTER:
            raise FrameError("receive counter exhausted")
        try:
            pt = _decrypt(ciphertext, None, _NONCE.pack(n), self._recv_key)
        except (CryptoError, ValueError):  # ValueError: shorter than a tag
            raise FrameCorrupt("frame failed authentication") from None
        self._recv_n = n + 1
        return pt

    async def read_frame(self) -> bytes:
        """The next plaintext message; raises a ``FrameError`` subclass on any violation."""
        reader = self.reader
        try:
            head = await reader.readexactly(4)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise FrameTruncated("stream ended inside a length prefix") from None
            raise ConnectionClosed("peer closed the connection") from None
        size = _LEN.unpack(head)[0]
        if size > self.max_frame + TAG_SIZE:
            raise FrameTooLarge(f"frame length {size} exceeds {self.max_frame} + tag")
        if size < TAG_SIZE:
            raise FrameCorrupt("frame shorter than its tag")
        self.body_since = time.monotonic()
        try:
            body = await reader.readexactly(size)
        except asyncio.IncompleteReadError:
            raise FrameTruncated("stream ended inside a frame") from None
        finally:
            self.body_since = 0.0
        return self.open(body)

    @property
    def frames_sent(self) -> int:
        return self._send_n

    @property
    def frames_received(self) -> int:
        return self._recv_n

    def remote_host(self) -> str | None:
        peer = self.writer.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            return str(peer[0])
        return None

    def close(self) -> None:
        """Drop the connection now. ``abort`` rather than ``close``: a graceful close
        waits for our unsent buffer to drain, and a peer that stopped reading would then
        hold the socket open for ever. Bytes already handed to the kernel still go out."""
        with contextlib.suppress(Exception):  # already closed: nothing to do
            self.writer.transport.abort()
