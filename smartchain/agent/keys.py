"""The agent's key: the device's Ed25519 key, sealed on disk like the keyring's.

The key file is the keystore's format (``smartchain.crypto.keystore``: Argon2id and
XSalsa20-Poly1305), so ``smart keys new`` or ``smart agent key new`` makes one. Its
passphrase comes from ``[agent] passphrase_file`` or ``SMART_PASSPHRASE``, never from the
config itself; a plaintext file is accepted only when it says it is one (devnet throwaways).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from smartchain.crypto import keystore
from smartchain.crypto.keys import PrivateKey

PASSPHRASE_ENV = "SMART_PASSPHRASE"


class AgentKeyError(ValueError):
    """The key file is missing, unreadable, or the passphrase is wrong or absent."""


def load_key(path: Path, passphrase_file: Path | None = None) -> PrivateKey:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise AgentKeyError(f"no key file at {path} (make one with `smart agent key new`)") \
            from None
    except (OSError, ValueError) as exc:
        raise AgentKeyError(f"cannot read key file {path}: {exc}") from None
    passphrase = None
    if keystore.is_encrypted(doc):
        if passphrase_file is not None:
            try:
                passphrase = passphrase_file.read_text().rstrip("\n")
            except OSError as exc:
                raise AgentKeyError(f"cannot read passphrase file: {exc}") from None
        else:
            passphrase = os.environ.get(PASSPHRASE_ENV)
        if not passphrase:
            raise AgentKeyError(f"{path} is sealed: set {PASSPHRASE_ENV} or [agent] "
                            f"passphrase_file")
    try:
        return keystore.open_doc(doc, passphrase)
    except keystore.KeystoreError as exc:
        raise AgentKeyError(f"{path}: {exc}") from None


def new_key(path: Path, passphrase: str | None, *, insecure: bool = False) -> PrivateKey:
    """A fresh device key sealed in ``path`` (refuses to overwrite one)."""
    if path.exists():
        raise AgentKeyError(f"{path} exists: a device key is never overwritten")
    key = PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    keystore.save(path, key, passphrase, insecure=insecure)
    return key
