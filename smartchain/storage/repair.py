"""Repair: rebuild a lost column of a deal onto a new provider, without the owner.

Any node may do it (and is paid from the deal's repair budget once the new column passes
its first audit), because nothing secret is needed: the pieces are ciphertext, and erasure
coding rebuilds fragment ``j`` of a segment from any ``k`` others, byte for byte. The chain
checks the result without seeing it: the rebuilt column must have the *same column root* as
the lost one, and the new provider must sign that it holds it. So a repairer cannot
substitute data, and the owner's decryption key is never involved.

Steps (``repair_column``): fetch ``k`` verified pieces of every segment from the deal's other
columns (the same fetcher as downloads: more than ``k`` asked at once, each checked against
the chain, corrupt providers skipped), rebuild the lost piece, spool the rebuilt column to a
temporary file (so a new provider that fails mid-upload is replaced without fetching again),
check its root against the chain, place it by rendezvous hashing on a provider not already in
the deal (or, failing that, back on the one that lost it), book the upload with a signed
intent, upload, collect the acceptance (for the column's next placement round, naming the
repairer: nobody else can post it) and post ``storage/repair``.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from typing import IO

from smartchain.crypto.keys import PrivateKey
from smartchain.modules.storage.module import healthy_count
from smartchain.modules.storage.types import (
    ACTIVE,
    Deal,
    NewColumn,
    Repair,
    StorageProvider,
    deal_column_bytes,
    piece_length,
)
from smartchain.p2p.peers import P2P
from smartchain.storage import layout
from smartchain.storage.client import (
    _FAULTS,
    REPAIR_WRITES,
    REQUEST_TIMEOUT,
    ChainView,
    ProviderFault,
    StorageError,
    _all_providers,
    _call,
    _describe,
    _dial,
    _Fetcher,
    chain_params,
    check_acceptance,
    place,
    send_intent,
    tx_gas,
)
from smartchain.storage.protocol import ACCEPT, PUT, Acceptance, AcceptColumn, PutAck, PutPiece

log = logging.getLogger("smartchain.storage.repair")


class RepairFailed(StorageError):
    """The column could not be rebuilt (too few pieces) or does not match the chain."""


async def repair_column(p2p: P2P, view: ChainView, file_id: bytes, frag_index: int, *,
                        key: PrivateKey, timeout: float = REQUEST_TIMEOUT,
                        tx_timeout: float = 60.0) -> bool:
    """Rebuild column ``frag_index`` of deal ``file_id`` onto a new provider, as ``key``'s
    account (the one ``view`` signs with: the acceptance names it).

    Returns ``False`` when there is nothing to do (no such active deal or column, the column
    is healthy, or the deal still has as many healthy columns as its threshold: the chain
    would refuse the repair) or when no provider could take the column;
    ``True`` once the chain has committed the repair. Raises ``RepairFailed`` (or
    ``SegmentUnavailable``) when the column cannot be rebuilt from what the other providers
    serve, and ``StorageError`` if the repair transaction fails (e.g. another repairer was
    first)."""
    deal = await _call(view.deal, file_id)
    if deal is None or deal.status != ACTIVE:
        return False
    lost = next((c for c in deal.columns if c.frag_index == frag_index), None)
    if lost is None or lost.healthy or healthy_count(deal) >= deal.repair_threshold:
        return False
    codec = layout.Codec(deal.k, deal.code_n)
    fetcher = _Fetcher(p2p, view, deal, file_id, await _call(_all_providers, view),
                       exclude={frag_index}, timeout=timeout)
    with tempfile.TemporaryFile(prefix="smart-repair-") as spool:
        roots: list[bytes] = []
        for s in range(deal.segments):
            pieces = await fetcher.segment(s, deal.k)
            piece = await asyncio.to_thread(codec.rebuild, list(pieces.values()), frag_index)
            if len(piece) != piece_length(deal, s):
                raise RepairFailed(f"segment {s}: rebuilt piece is {len(piece)} bytes, the deal "
                                   f"says {piece_length(deal, s)}")
            roots.append(layout.piece_root(piece))
            spool.write(piece)
        if layout.column_root(roots) != lost.root:
            raise RepairFailed(f"the rebuilt column {frag_index} does not match its root on "
                               "chain")
        nbytes = deal_column_bytes(deal)
        taken = {c.provider for c in deal.columns}
        active = await _call(view.providers)
        candidates = place(active, file_id, len(active), exclude=taken, column_bytes=nbytes,
                           params=chain_params(view))
        # Last resort, the provider that lost it: it re-stores the column and is audited
        # again (with no spare provider, that is the only way back to n healthy columns).
        candidates += [(a, p) for a, p in active if a == lost.provider]
        for address, rec in candidates:
            try:
                acc = await _upload(p2p, view, key, (address, rec), file_id, frag_index,
                                    lost.round + 1, spool, deal, roots, timeout)
            except _FAULTS as exc:
                log.warning("repair of %s column %d: provider %s failed: %s", file_id.hex()[:12],
                            frag_index, address.hex()[:12], _describe(exc))
                continue
            payload = Repair(file_id, frag_index,
                             NewColumn(address, frag_index, acc.root, acc.height,
                                       acc.signature))
            tx_hash = await _call(view.submit, "storage/repair", payload,
                                  tx_gas(view, payload, REPAIR_WRITES, signatures=1))
            await _call(view.wait, tx_hash, tx_timeout)
            log.info("repaired %s column %d onto provider %s (tx %s)", file_id.hex()[:12],
                     frag_index, address.hex()[:12], tx_hash)
            return True
    log.warning("repair of %s column %d: no provider could take it",
                file_id.hex()[:12], frag_index)
    return False


async def _upload(p2p: P2P, view: ChainView, key: PrivateKey,
                  provider: tuple[bytes, StorageProvider], file_id: bytes, frag_index: int,
                  round: int, spool: IO[bytes], deal: Deal, roots: list[bytes],
                  timeout: float) -> Acceptance:
    """Book, put the spooled column on one provider and get its checked acceptance."""
    address, rec = provider
    peer = await _dial(p2p, rec.p2p)
    await send_intent(p2p, view, key, peer, address, file_id, frag_index, deal.segments,
                      deal_column_bytes(deal), timeout)
    spool.seek(0)
    for s in range(deal.segments):
        piece = await asyncio.to_thread(spool.read, piece_length(deal, s))
        reply = await p2p.request(peer, PUT, PutPiece(file_id, frag_index, s, piece).encode(),
                                  timeout)
        if PutAck.decode(reply).piece_root != roots[s]:
            raise ProviderFault(f"acknowledged segment {s} with a wrong piece root")
    reply = await p2p.request(
        peer, ACCEPT, AcceptColumn(file_id, frag_index, deal.segments, tuple(roots)).encode(),
        timeout)
    return check_acceptance(view.chain_id, rec, file_id, frag_index, roots,
                            deal_column_bytes(deal), reply, round=round, uploader=key.address)
