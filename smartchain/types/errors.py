"""Why a transaction was refused or failed: one code table shared by mempool, receipts and API."""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    OK = 0
    MALFORMED = 1
    BAD_SIGNATURE = 2
    WRONG_CHAIN = 3
    NONCE_REUSED = 4
    NONCE_SKIPPED = 5
    INSUFFICIENT_FUNDS = 6
    FEE_TOO_LOW = 7
    TX_TOO_LARGE = 8
    UNKNOWN_KIND = 9
    INVALID_PAYLOAD = 10
    OUT_OF_GAS = 11
    GAS_LIMIT = 12
    DUPLICATE = 13
    MEMPOOL_FULL = 14
    FAILED = 15  # a handler's own business-rule failure

    @property
    def slug(self) -> str:
        return self.name.lower()


class TxError(Exception):
    """A transaction was refused (before the mempool) or failed (in a block)."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"TxError({self.code.slug}: {self.message})"


class OutOfGas(TxError):
    def __init__(self, limit: int) -> None:
        super().__init__(Code.OUT_OF_GAS, f"out of gas (limit {limit})")
