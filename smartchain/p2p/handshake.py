"""Authenticated key exchange that opens every p2p connection (SIGMA-I style).

Built only from libsodium primitives (PyNaCl bindings): X25519 (``crypto_scalarmult``),
BLAKE2b (``crypto_generichash``), Ed25519 (``crypto_sign``) and ChaCha20-Poly1305.
Every handshake message is a 4-byte length prefix plus at most 1 KiB::

    initiator -> responder   Hello_I = (protocol, network_id, e_I)
    responder -> initiator   Hello_R = (protocol, network_id, e_R)
                             AEAD[k_hs_r2i](Auth_R = (id_R, port_R, sig_R))
    initiator -> responder   AEAD[k_hs_i2r](Auth_I = (id_I, port_I, sig_I))

``e_I``/``e_R`` are fresh X25519 keys made for this connection only, ``th`` is BLAKE2b over
both Hello messages (so it covers both ephemeral keys, the protocol and the network id),
``sig_X`` is an Ed25519 signature by identity ``id_X`` of
``(domain, role, th, id_X, port_X)`` where ``role`` is "initiator" or "responder", and
every key is BLAKE2b keyed with the X25519 shared secret over ``th``, with a distinct
label per use: two handshake keys and two session keys, one per direction.

Why a peer cannot impersonate another identity:
  to be accepted as ``id_X`` a peer must produce ``id_X``'s signature over a transcript
  that contains *our* fresh ephemeral key, which did not exist before this connection;
  only the holder of ``id_X``'s private key can do so. The dialer knows the public key it
  expects (addresses are ``pubkeyhex@host:port``) and aborts on any other identity, before
  revealing its own. The role in the signed message stops a signature from being
  reflected back in the other role. Auth messages travel encrypted and authenticated
  under keys derived from the Diffie-Hellman secret, which binds the claimed identity to
  this key exchange: a man in the middle who relays both Hellos does not know the secret,
  so it can neither read the identities nor substitute its own (the "identity
  misbinding" attack on signed Diffie-Hellman). One who runs its own key exchange with
  each side ends up with transcripts that differ from the ones the honest parties sign.
  Without the ephemeral secrets nobody can compute the session keys, so relayed frames
  can be neither read nor altered (see ``framing``).

Why a recorded handshake cannot be replayed:
  the responder makes a new ephemeral key for every connection, so a replayed Hello_I
  yields a new ``th`` and new keys; the recorded Auth_I then fails authentication under
  the new handshake key (and its signature covers the old ``th``). Frames cannot be
  replayed or reordered within a session because their nonce is a per-direction
  counter, nor across sessions because every session has fresh keys.

The whole exchange runs under a timeout, so a silent or slow peer cannot hold a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nacl.bindings as _nb
import nacl.exceptions as _nexc

from smartchain.codec import U16, CodecError, Fixed32, Fixed64, Str, Struct
from smartchain.crypto.keys import PrivateKey
from smartchain.p2p.framing import P2PError, SecureChannel

__all__ = ["PROTOCOL", "Auth", "HandshakeError", "Hello", "WrongNetwork", "initiate", "respond"]

PROTOCOL = "smartchain-p2p/1"
AUTH_DOMAIN = "smartchain-p2p/1 handshake auth"
MAX_HANDSHAKE_FRAME = 1024
ROLE_INITIATOR = "initiator"
ROLE_RESPONDER = "responder"

_LEN = struct.Struct(">I")
_ZERO_NONCE = bytes(12)  # each handshake key encrypts exactly one message


class HandshakeError(P2PError):
    """The remote end did not complete a valid, authenticated handshake."""


class WrongNetwork(HandshakeError):
    """The remote end runs another network (another genesis): ``theirs`` is its id."""

    def __init__(self, theirs: str, ours: str) -> None:
        super().__init__(f"peer is on network {theirs[:64]!r}, not {ours!r}")
        self.theirs, self.ours = theirs[:64], ours


@dataclass(frozen=True, slots=True)
class Hello(Struct):
    protocol: Str
    network_id: Str
    ephemeral: Fixed32  # X25519 public key, fresh per connection


@dataclass(frozen=True, slots=True)
class Auth(Struct):
    identity: Fixed32  # Ed25519 public key = peer id
    listen_port: U16  # where the sender accepts connections (0: it does not)
    signature: Fixed64


@dataclass(frozen=True, slots=True)
class SignedTranscript(Struct):
    """What an identity signs: it names the role, the connection and the signer itself."""

    domain: Str
    role: Str
    transcript: Fixed32
    identity: Fixed32
    listen_port: U16


@dataclass(frozen=True, slots=True)
class _Keys:
    hs_i2r: bytes
    hs_r2i: bytes
    i2r: bytes
    r2i: bytes


def _person(label: bytes) -> bytes:
    return label.ljust(_nb.crypto_generichash_PERSONALBYTES, b"\0")


def _transcript(hello_i: bytes, hello_r: bytes) -> bytes:
    # Both encodings are self-delimiting, so their concatenation is unambiguous.
    return _nb.crypto_generichash_blake2b_salt_personal(
        hello_i + hello_r, digest_size=32, person=_person(b"sc-p2p-th"))


def _derive(secret: bytes, peer_ephemeral: bytes, th: bytes) -> _Keys:
    try:
        shared = _nb.crypto_scalarmult(secret, peer_ephemeral)
    except (_nexc.RuntimeError, _nexc.CryptoError, ValueError):
        # libsodium refuses low-order points (an all-zero shared secret).
        raise HandshakeError("peer sent an invalid ephemeral key") from None

    def kdf(label: bytes) -> bytes:
        return _nb.crypto_generichash_blake2b_salt_personal(
            th, digest_size=32, key=shared, person=_person(label))

    return _Keys(kdf(b"sc-p2p-hs-i2r"), kdf(b"sc-p2p-hs-r2i"),
                 kdf(b"sc-p2p-data-i2r"), kdf(b"sc-p2p-data-r2i"))


def _frame(data: bytes) -> bytes:
    return _LEN.pack(len(data)) + data


async def _read(reader: asyncio.StreamReader) -> bytes:
    size = _LEN.unpack(await reader.readexactly(4))[0]
    if size > MAX_HANDSHAKE_FRAME:
        raise HandshakeError(f"handshake message of {size} bytes is too large")
    return await reader.readexactly(size)


def _check_hello(raw: bytes, network_id: str, own_ephemeral: bytes) -> Hello:
    hello = Hello.decode(raw)
    if hello.protocol != PROTOCOL:
        raise HandshakeError(f"unsupported protocol {hello.protocol[:40]!r}")
    if hello.network_id != network_id:
        raise WrongNetwork(hello.network_id, network_id)
    if hello.ephemeral == own_ephemeral:
        raise HandshakeError("peer reflected our ephemeral key")
    return hello


def _seal_auth(identity: PrivateKey, key: bytes, th: bytes, role: str, port: int) -> bytes:
    signed = SignedTranscript(AUTH_DOMAIN, role, th, identity.public_key, port).encode()
    auth = Auth(identity.public_key, port, identity.sign(signed)).encode()
    return _nb.crypto_aead_chacha20poly1305_ietf_encrypt(auth, th, _ZERO_NONCE, key)


def _open_auth(sealed: bytes, key: bytes, th: bytes, role: str) -> Auth:
    try:
        raw = _nb.crypto_aead_chacha20poly1305_ietf_decrypt(sealed, th, _ZERO_NONCE, key)
    except (_nexc.CryptoError, ValueError):  # ValueError: shorter than a tag
        raise HandshakeError("peer's auth message failed authentication") from None
    auth = Auth.decode(raw)
    signed = SignedTranscript(AUTH_DOMAIN, role, th, auth.identity, auth.listen_port).encode()
    try:
        _nb.crypto_sign_open(auth.signature + signed, auth.identity)
    except (_nexc.BadSignatureError, _nexc.CryptoError, ValueError):
        raise HandshakeError("peer's identity signature is invalid") from None
    return auth


def _fresh_ephemeral() -> tuple[bytes, bytes]:
    secret = os.urandom(_nb.crypto_scalarmult_SCALARBYTES)
    return secret, _nb.crypto_scalarmult_base(secret)


@contextlib.asynccontextmanager
async def _bounded(timeout: float) -> AsyncIterator[None]:
    """Both sides' handshake: a deadline, and every failure as one ``HandshakeError``."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except HandshakeError:
        raise
    except TimeoutError:
        raise HandshakeError("handshake timed out") from None
    except asyncio.IncompleteReadError:
        raise HandshakeError("connection closed during the handshake") from None
    except CodecError as exc:
        raise HandshakeError(f"malformed handshake message: {exc}") from None
    except OSError as exc:
        raise HandshakeError(f"connection failed during the handshake: {exc}") from None


async def initiate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   identity: PrivateKey, network_id: str, *, expected_peer: bytes | None,
                   listen_port: int = 0, max_frame: int = 4 * 1024 * 1024,
                   timeout: float = 5.0) -> SecureChannel:
    """Dialer side. ``expected_peer`` (the public key from the address) is enforced
    before we reveal our own identity; pass ``None`` only in tests."""
    async with _bounded(timeout):
        secret, ephemeral = _fresh_ephemeral()
        hello_i = Hello(PROTOCOL, network_id, ephemeral).encode()
        writer.write(_frame(hello_i))
        await writer.drain()
        hello_r_raw = await _read(reader)
        hello_r = _check_hello(hello_r_raw, network_id, ephemeral)
        th = _transcript(hello_i, hello_r_raw)
        keys = _derive(secret, hello_r.ephemeral, th)
        auth_r = _open_auth(await _read(reader), keys.hs_r2i, th, ROLE_RESPONDER)
        if expected_peer is not None and auth_r.identity != expected_peer:
            raise HandshakeError(
                f"peer identity {auth_r.identity.hex()[:16]}… is not the expected "
                f"{expected_peer.hex()[:16]}…")
        if auth_r.identity == identity.public_key:
            raise HandshakeError("connected to ourselves")
        writer.write(_frame(_seal_auth(identity, keys.hs_i2r, th, ROLE_INITIATOR,
                                       listen_port)))
        await writer.drain()
    return SecureChannel(reader, writer, send_key=keys.i2r, recv_key=keys.r2i,
                         peer_id=auth_r.identity, initiator=True,
                         peer_listen_port=auth_r.listen_port, max_frame=max_frame,
                         transcript=th)


async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  identity: PrivateKey, network_id: str, *, listen_port: int = 0,
                  max_frame: int = 4 * 1024 * 1024, timeout: float = 5.0) -> SecureChannel:
    """Listener side: learns the dialer's identity only after proving its own."""
    async with _bounded(timeout):
        hello_i_raw = await _read(reader)
        secret, ephemeral = _fresh_ephemeral()
        hello_r = Hello(PROTOCOL, network_id, ephemeral).encode()
        try:
            hello_i = _check_hello(hello_i_raw, network_id, ephemeral)
        except (HandshakeError, CodecError):
            writer.write(_frame(hello_r))  # public anyway; tells a dialer on another
            raise  # network or protocol version why we hang up
        th = _transcript(hello_i_raw, hello_r)
        keys = _derive(secret, hello_i.ephemeral, th)
        auth_r = _seal_auth(identity, keys.hs_r2i, th, ROLE_RESPONDER, listen_port)
        writer.write(_frame(hello_r) + _frame(auth_r))
        await writer.drain()
        auth_i = _open_auth(await _read(reader), keys.hs_i2r, th, ROLE_INITIATOR)
        if auth_i.identity == identity.public_key:
            raise HandshakeError("connected to ourselves")
    return SecureChannel(reader, writer, send_key=keys.r2i, recv_key=keys.i2r,
                         peer_id=auth_i.identity, initiator=False,
                         peer_listen_port=auth_i.listen_port, max_frame=max_frame,
                         transcript=th)
