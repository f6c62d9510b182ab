"""What a provider lets an account upload (storage/admission.py, red-team finding 7): a
signed intent from a funded account for this provider and this connection, within the
account's quota, for a column that can become a deal or a repair, for a short time; and
the pieces of an upload that lapses without a deal are deleted at once.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.storage import module as sm
from smartchain.p2p.peers import BadRequest, Refused
from smartchain.state.params import Params
from smartchain.storage import layout
from smartchain.storage.admission import MIN_RESERVATION, Reservations, funds_needed
from smartchain.storage.piecestore import PieceStore
from smartchain.storage.protocol import PEER_LAG_BLOCKS, UploadIntent, intent_expiry, sign_intent

CHAIN = "smart-admission-1"
PARAMS = Params()
TTL = PARAMS.storage_accept_ttl
PRICE = 10**12  # per GiB per epoch
PROVIDER = PrivateKey.from_seed(b"\x01" * 32)
OWNER = PrivateKey.from_seed(b"\x02" * 32)
PEER = b"\x03" * 32
RICH = 10**15
MiB = 1 << 20


def intent(key: PrivateKey = OWNER, *, salt: bytes = b"\x05" * 32, frag: int = 0,
           nbytes: int = MiB, segments: int = 1, epochs: int = 10, expires: int = 100,
           peer: bytes = PEER, file_id: bytes | None = None) -> UploadIntent:
    fid = file_id if file_id is not None else sm.file_id_of(key.address, salt)
    return sign_intent(key, CHAIN, provider=PROVIDER.address, peer=peer, file_id=fid,
                       frag_index=frag, segments=segments, column_bytes=nbytes, salt=salt,
                       epochs=epochs, expires=expires)


def book(quota: int = 16 * MiB) -> Reservations:
    return Reservations(PROVIDER.address, CHAIN, quota)


def admit(r: Reservations, i: UploadIntent, *, height: int = 50, balance: int = RICH,
          deal: sm.Deal | None = None, peer: bytes = PEER) -> None:
    r.admit(peer, i, height=height, params=PARAMS, price=PRICE, balance=balance, deal=deal)


def test_a_put_needs_an_intent_from_the_same_peer() -> None:
    r = book()
    i = intent()
    with pytest.raises(BadRequest, match="no upload intent"):
        r.for_put(PEER, i.file_id, 0, 0, 1000, 50)
    admit(r, i)
    r.for_put(PEER, i.file_id, 0, 0, 1000, 50)
    with pytest.raises(BadRequest, match="no upload intent"):
        r.for_put(b"\x04" * 32, i.file_id, 0, 0, 1000, 50)  # another connection


@pytest.mark.parametrize("bad,error,why", [
    (lambda: intent(peer=b"\x09" * 32), BadRequest, "another P2P identity"),
    (lambda: intent(file_id=h256(b"someone else's")), BadRequest, "not the account's"),
    (lambda: intent(epochs=0), BadRequest, "names its epochs"),
    (lambda: intent(expires=49), Refused, "not usable"),
    (lambda: intent(expires=50 + TTL + 1), Refused, "not usable"),
    (lambda: intent(segments=0), BadRequest, "not a column"),
    (lambda: replace(intent(), signature=bytes(64)), BadRequest, "not signed"),
    (lambda: replace(intent(), epochs=1), BadRequest, "not signed"),  # changed after signing
])
def test_malformed_forged_or_stale_intents_are_refused(bad, error, why) -> None:
    r = book()
    with pytest.raises(error, match=why):
        admit(r, bad())
    assert r.book == {}


def test_a_clients_intent_is_taken_by_providers_a_few_blocks_behind_it() -> None:
    """Nodes commit a block moments apart: an intent made at the client's height must not
    be refused by a provider that has not seen the last blocks yet (it was, one block
    behind, when the client asked for the whole ttl)."""
    client_height = 500
    expires = intent_expiry(client_height, TTL)
    for lag in (0, 1, PEER_LAG_BLOCKS):
        admit(book(), intent(expires=expires), height=client_height - lag)
    with pytest.raises(Refused, match="not usable"):
        admit(book(), intent(expires=expires), height=client_height - PEER_LAG_BLOCKS - 1)


def test_an_account_that_cannot_pay_for_the_column_is_refused() -> None:
    i = intent(epochs=10)
    need = funds_needed(PARAMS, PRICE, i)
    assert need == sm.epoch_fee(PRICE, MiB) * 10
    with pytest.raises(Refused, match="holds"):
        admit(book(), i, balance=need - 1)
    admit(book(), i, balance=need)
    tiny = intent(nbytes=10, epochs=1)  # the cost of the column is below any fee
    with pytest.raises(Refused, match="holds"):
        admit(book(), tiny, balance=PARAMS.tx_base_gas * PARAMS.min_gas_price - 1)


def test_an_account_has_a_quota_of_pending_bytes() -> None:
    r = book(quota=3 * MiB)
    for frag in range(3):
        admit(r, intent(frag=frag))
    with pytest.raises(Refused, match="quota"):
        admit(r, intent(frag=3))
    admit(r, intent(frag=2))  # renewing a booking does not count it twice
    other = PrivateKey.from_seed(b"\x06" * 32)
    admit(r, intent(other, frag=3))  # another account has its own quota
    small = book(quota=MIN_RESERVATION * 2)
    admit(small, intent(nbytes=1, frag=0))
    admit(small, intent(nbytes=1, frag=1))
    with pytest.raises(Refused, match="quota"):  # tiny intents count at least 64 KiB each
        admit(small, intent(nbytes=1, frag=2))


def test_puts_stop_at_the_declared_bytes_and_at_expiry() -> None:
    r = book()
    i = intent(nbytes=3000, segments=3, expires=60)
    admit(r, i)
    r.for_put(PEER, i.file_id, 0, 0, 1000, 50)
    r.for_put(PEER, i.file_id, 0, 0, 1000, 50)  # the same segment again: no double count
    r.for_put(PEER, i.file_id, 0, 1, 2000, 50)
    with pytest.raises(BadRequest, match="declared"):
        r.for_put(PEER, i.file_id, 0, 2, 1, 50)
    with pytest.raises(BadRequest, match="past the 3"):
        r.for_put(PEER, i.file_id, 0, 3, 0, 50)
    with pytest.raises(Refused, match="expired"):
        r.for_put(PEER, i.file_id, 0, 2, 0, 61)


def test_only_a_column_open_for_repair_can_be_uploaded_to_an_existing_deal() -> None:
    repairer = PrivateKey.from_seed(b"\x07" * 32)
    fid = sm.file_id_of(OWNER.address, b"\x05" * 32)
    col = sm.Column(PROVIDER.address, 0, bytes(32), True, PRICE)
    deal = sm.Deal(OWNER.address, b"\x05" * 32, 100, 1, 3, 1, MiB, MiB, 1, 9, 2, 0, 0,
                   (col, replace(col, frag_index=1)), sm.ACTIVE)
    i = intent(repairer, file_id=fid, salt=bytes(32), epochs=0)
    with pytest.raises(Refused, match="not open for repair"):
        admit(book(), i, deal=deal)
    lost = replace(deal, columns=(replace(col, healthy=False), deal.columns[1]))
    admit(book(), i, deal=lost)
    with pytest.raises(BadRequest, match="not the deal's"):
        admit(book(), intent(repairer, file_id=fid, salt=bytes(32), epochs=0, nbytes=MiB - 1),
              deal=lost)


def test_lapsed_uploads_are_named_for_deletion_and_deals_keep_theirs() -> None:
    r = book()
    never = intent(frag=0, expires=60)  # never accepted
    waiting = intent(frag=1, expires=60)  # accepted at 55: waits until 55 + TTL
    dealt = intent(frag=2, expires=60)  # accepted, then in a deal
    for i in (never, waiting, dealt):
        admit(r, i)
    fid = never.file_id
    r.accept(PEER, fid, 1, 1, 55)
    r.accept(PEER, fid, 2, 1, 55)
    assert r.settle(60, TTL, {(fid, 2)}) == []  # the deal's column: booking released
    assert r.pending(OWNER.address) == 2 * MiB
    assert r.settle(61, TTL, set()) == [(fid, 0)]
    assert r.settle(55 + TTL, TTL, set()) == []
    assert r.settle(56 + TTL, TTL, set()) == [(fid, 1)]
    assert r.book == {} and r.pending(OWNER.address) == 0


def test_a_repair_back_onto_the_provider_that_lost_the_column_keeps_its_booking() -> None:
    """That column is pinned there all along (the chain still lists it for the provider):
    its booking must last while the pieces arrive, and go once they are accepted."""
    r = book()
    i = intent(expires=60)
    admit(r, i)
    column = {(i.file_id, 0)}
    assert r.settle(51, TTL, column) == []
    r.for_put(PEER, i.file_id, 0, 0, 1000, 51)  # still booked
    r.accept(PEER, i.file_id, 0, 1, 52)
    assert r.settle(53, TTL, column) == [] and r.book == {}


def test_discard_deletes_an_unpinned_column_now_and_spares_the_rest(tmp_path: Path) -> None:
    with PieceStore(tmp_path, 64 * MiB, min_free=0) as store:
        fid = h256(b"f")
        pieces = {(j, s): os.urandom(5000) for j in range(3) for s in range(2)}
        for (j, s), piece in pieces.items():
            store.put(fid, j, s, piece)
        store.accept(fid, 1, [layout.piece_root(pieces[(1, s)]) for s in range(2)])
        store.set_pinned([(fid, 1)])
        used = store.used
        assert store.discard(fid, 0) == (2, 10_000)
        assert store.discard(fid, 1) == (0, 0)  # pinned: in a deal
        assert store.used == used - 10_000
        assert store.get(fid, 2, 0) == pieces[(2, 0)] and store.get(fid, 1, 1) == pieces[(1, 1)]

