"""BIP39 recovery phrases for keys (the ``mnemonic`` package).

A phrase gives the BIP39 seed (PBKDF2, no passphrase); the ed25519 key's 32-byte seed is
the SLIP-0010 master key of it (HMAC-SHA512 keyed ``ed25519 seed``, first half), so a
phrase restores the same key in any tool that follows SLIP-0010 at the master level.
"""

from __future__ import annotations

import hashlib
import hmac

from mnemonic import Mnemonic

from smartchain.crypto.keys import PrivateKey

WORDS = Mnemonic("english")
STRENGTH = 256  # bits: 24 words


def new_phrase() -> str:
    return WORDS.generate(STRENGTH)


def key_from_phrase(phrase: str) -> PrivateKey:
    """The key a phrase stands for; ``ValueError`` (never quoting it) if it is not one."""
    words = " ".join(phrase.lower().split())
    if not WORDS.check(words):
        raise ValueError("invalid recovery phrase: expected 12 to 24 BIP39 English words "
                         "with a valid checksum")
    return slip10_master(Mnemonic.to_seed(words))


def slip10_master(bip39_seed: bytes) -> PrivateKey:
    """SLIP-0010's ed25519 master key of a BIP39 seed (the first half of its HMAC)."""
    master = hmac.new(b"ed25519 seed", bip39_seed, hashlib.sha512).digest()
    return PrivateKey.from_seed(master[:32])
