"""Named keys in ``$SMART_HOME/keys/NAME.json`` (sealed key files, see crypto.keystore)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from smartchain.cli.settings import cli_home
from smartchain.crypto import keystore
from smartchain.crypto.keys import PrivateKey

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class KeyringError(ValueError):
    """A keyring failure; ``code`` is its JSON error code (``jsoncontract.ERROR_CODES``)."""

    def __init__(self, message: str, code: str = "usage") -> None:
        super().__init__(message)
        self.code = code


def keys_dir() -> Path:
    return cli_home() / "keys"


def key_path(name: str) -> Path:
    if not NAME_RE.match(name):
        raise KeyringError(f"invalid key name {name!r}: use letters, digits, '_', '-', '.'")
    return keys_dir() / f"{name}.json"


def read_doc(name: str) -> dict:
    path = key_path(name)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyringError(f"no key named {name!r} (see `smart keys list`)",
                           "not_found") from None
    except json.JSONDecodeError as exc:
        raise KeyringError(f"key file {path} is corrupt: {exc}", "keystore") from exc


def add(name: str, key: PrivateKey, passphrase: str | None, *, insecure: bool = False,
        replace_devnet: bool = False) -> Path:
    path = key_path(name)
    if path.exists():
        if replace_devnet and read_doc(name).get("devnet"):
            path.unlink()
        else:
            raise KeyringError(f"a key named {name!r} already exists", "key_exists")
    keystore.save(path, key, passphrase, insecure=insecure)
    if replace_devnet:
        doc = json.loads(path.read_text())
        doc["devnet"] = True
        path.write_text(json.dumps(doc, indent=2))
    return path


def delete(name: str) -> Path:
    path = key_path(name)
    read_doc(name)  # not_found if there is none
    path.unlink()
    return path


def rename(old: str, new: str) -> Path:
    """The key file moved to its new name; refused if that name is taken."""
    source, target = key_path(old), key_path(new)
    read_doc(old)
    if target.exists():
        raise KeyringError(f"a key named {new!r} already exists", "key_exists")
    source.rename(target)
    return target


def load(name: str, passphrase: str | None) -> PrivateKey:
    return keystore.open_doc(read_doc(name), passphrase)


def names() -> list[str]:
    if not keys_dir().exists():
        return []
    return sorted(p.stem for p in keys_dir().glob("*.json"))
