"""Key files: the Ed25519 seed sealed with a passphrase (Argon2id + XSalsa20-Poly1305).

Plaintext key files exist only when the caller says ``insecure=True`` (the devnet's demo
accounts), and say so in the file itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey

VERSION = 1
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE


class KeystoreError(ValueError):
    """Wrong passphrase, corrupt file or unreadable key."""


def _kdf(passphrase: str, salt: bytes, ops: int, mem: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, opslimit=ops, memlimit=mem
    )


def seal(key: PrivateKey, passphrase: str | None, *, insecure: bool = False,
         ops: int = OPSLIMIT, mem: int = MEMLIMIT) -> dict:
    """The JSON document for a key file."""
    doc: dict = {
        "version": VERSION,
        "address": to_bech32(key.address),
        "public_key": key.public_key.hex(),
    }
    if insecure:
        doc["insecure_plaintext_seed"] = key.seed.hex()
        return doc
    if not passphrase:
        raise KeystoreError("a passphrase is required (or use --insecure for throwaway keys)")
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_kdf(passphrase, salt, ops, mem))
    doc["crypto"] = {
        "kdf": "argon2id",
        "opslimit": ops,
        "memlimit": mem,
        "salt": salt.hex(),
        "cipher": "xsalsa20poly1305",
        "ciphertext": bytes(box.encrypt(key.seed)).hex(),
    }
    return doc


def open_doc(doc: dict, passphrase: str | None) -> PrivateKey:
    """Recover the key from a key-file document."""
    try:
        if "insecure_plaintext_seed" in doc:
            key = PrivateKey.from_seed(bytes.fromhex(doc["insecure_plaintext_seed"]))
        else:
            c = doc["crypto"]
            if c.get("kdf") != "argon2id" or c.get("cipher") != "xsalsa20poly1305":
                raise KeystoreError("unsupported key file format")
            if passphrase is None:
                raise KeystoreError("this key is encrypted: a passphrase is required")
            box = nacl.secret.SecretBox(
                _kdf(passphrase, bytes.fromhex(c["salt"]), int(c["opslimit"]), int(c["memlimit"]))
            )
            key = PrivateKey.from_seed(box.decrypt(bytes.fromhex(c["ciphertext"])))
    except nacl.exceptions.CryptoError as exc:
        raise KeystoreError("wrong passphrase or corrupt key file") from exc
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, KeystoreError):
            raise
        raise KeystoreError(f"malformed key file: {exc}") from exc
    if key.public_key.hex() != doc.get("public_key"):
        raise KeystoreError("key file public key does not match its seed")
    return key


def is_encrypted(doc: dict) -> bool:
    return "crypto" in doc


def save(path: Path, key: PrivateKey, passphrase: str | None, *, insecure: bool = False) -> None:
    """Write a key file readable only by its owner; never overwrite an existing one."""
    doc = seal(key, passphrase, insecure=insecure)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())


def load(path: Path, passphrase: str | None) -> PrivateKey:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise KeystoreError(f"cannot read key file {path}: {exc}") from exc
    return open_doc(doc, passphrase)
