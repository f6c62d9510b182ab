"""What a module's SDK methods (``modules/<name>/sdk.py``) build on: the client's core calls.

Each module's SDK is a mixin over ``ModuleSdk``; ``smartchain.client.Client`` composes them
and supplies the two core calls (an HTTP request to the node, and sending a transaction with
simulated gas). Standard library, codec, crypto and shared types only: the SDK embeds without
the node.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from smartchain.codec import Struct
from smartchain.crypto.keys import PrivateKey


class ApiError(Exception):
    """The node refused a request: ``code`` is the machine-readable reason (one of the
    closed list in docs/errors.md), ``details`` what the error document added."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def seg(text: str) -> str:
    """One URL path segment: user input must not add segments or a query."""
    return urllib.parse.quote(text, safe="")


class ModuleSdk:
    """The core calls a module's SDK methods use; ``Client`` implements them."""

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        raise NotImplementedError

    def send_tx(self, key: PrivateKey, kind: str, payload: Struct | bytes, *,
                gas_limit: int | None = None, wait: bool = True, dry_run: bool = False,
                nonce: int | None = None, gas_price: int | None = None,
                chain_id: str | None = None) -> dict[str, Any]:
        raise NotImplementedError
