"""Stateless checks of the storage payloads (run before the mempool)."""

from __future__ import annotations

from smartchain.modules.storage.types import (
    LEAF_SIZE,
    MAX_CODE_N,
    MAX_EPOCHS,
    MAX_P2P,
    MAX_PIECE_SIZE,
    MAX_PROOFS,
    MAX_RECEIPTS,
    ClaimBandwidth,
    CreateDeal,
    NewColumn,
    Prove,
    RegisterProvider,
)
from smartchain.state.emission import MAX_SUPPLY
from smartchain.types.errors import Code, TxError

# --- stateless checks --------------------------------------------------------------------------


def _invalid(message: str) -> TxError:
    return TxError(Code.INVALID_PAYLOAD, message)


def _validate_register(msg: RegisterProvider) -> None:
    if msg.capacity <= 0:
        raise _invalid("capacity must be a positive number of bytes")
    if not msg.p2p or len(msg.p2p) > MAX_P2P:
        raise _invalid(f"p2p address must be 1..{MAX_P2P} characters")
    if msg.collateral > MAX_SUPPLY:
        raise _invalid("collateral exceeds the HPC supply cap")


def _validate_column(col: NewColumn, code_n: int) -> None:
    if col.frag_index >= code_n:
        raise _invalid(f"fragment index {col.frag_index} is not below code_n {code_n}")


def _validate_deal(msg: CreateDeal) -> None:
    n = len(msg.columns)
    if not 1 <= msg.k < n <= msg.code_n <= MAX_CODE_N:
        raise _invalid(f"need 1 <= k < n <= code_n <= {MAX_CODE_N} (k={msg.k}, n={n} columns, "
                       f"code_n={msg.code_n})")
    if not msg.k < msg.repair_threshold <= n:
        raise _invalid("repair threshold must be above k and at most the number of columns")
    if len({c.provider for c in msg.columns}) != n:
        raise _invalid("each column needs a distinct provider")
    if len({c.frag_index for c in msg.columns}) != n:
        raise _invalid("each column needs a distinct fragment index")
    for col in msg.columns:
        _validate_column(col, msg.code_n)
    if msg.segments < 1 or not 1 <= msg.epochs <= MAX_EPOCHS:
        raise _invalid(f"a deal needs at least one segment and 1..{MAX_EPOCHS} epochs")
    if msg.piece_size > MAX_PIECE_SIZE or msg.last_piece_size > MAX_PIECE_SIZE:
        raise _invalid(f"pieces are at most {MAX_PIECE_SIZE} bytes")
    if msg.segments > 1 and msg.last_piece_size > msg.piece_size:
        raise _invalid("the last piece cannot be larger than the others")
    if msg.max_cost > MAX_SUPPLY:
        raise _invalid("max cost exceeds the HPC supply cap")


def _validate_prove(msg: Prove) -> None:
    if not 1 <= len(msg.proofs) <= MAX_PROOFS:
        raise _invalid(f"1..{MAX_PROOFS} proofs per transaction")
    for proof in msg.proofs:
        if len(proof.chunk) > LEAF_SIZE:
            raise _invalid(f"a proof's chunk is at most {LEAF_SIZE} bytes")


def _validate_claim(msg: ClaimBandwidth) -> None:
    if not 1 <= len(msg.receipts) <= MAX_RECEIPTS:
        raise _invalid(f"1..{MAX_RECEIPTS} receipts per transaction")
