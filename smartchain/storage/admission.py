"""Who may upload to a provider, how much, and for how long (red-team finding 7).

A provider used to take ``store/put`` from any P2P peer: anyone could fill its disk with
pieces no deal would ever pay for until the hourly garbage collection. Now every upload
starts with an ``UploadIntent`` (``storage/protocol.py``) and ``Reservations`` decides:

- **Signed by a funded account, for this upload only.** The intent names this provider and
  the P2P identity sending the pieces (a copied intent is useless on another connection),
  and is signed by the account; that account must hold what the column would cost it: its
  fee here for the deal's epochs (at least one, and at least a transaction's minimum fee).
- **For a column that can exist.** A new deal's file id must be the account's own
  (``file_id_of(account, salt)``); otherwise the chain must have an active deal whose column
  is lost and open for repair, with the same segments and bytes.
- **Bounded.** Each account has ``quota`` bytes of columns reserved and not yet in a deal
  (a reservation counts at least ``MIN_RESERVATION``, so tiny intents cannot flood memory);
  puts beyond the declared column bytes are refused.
- **Short-lived.** Pieces are taken until the intent's ``expires`` height (at most
  ``storage_accept_ttl`` blocks ahead). Once the column is accepted it waits for its deal
  (or repair) for as long as the acceptance is usable, ``storage_accept_ttl`` blocks; then,
  unless the chain put it in a deal, ``settle`` names it for deletion at once.

Pure bookkeeping, no I/O: the provider node reads the chain and the disk, and the tests
drive it directly. Rejections raise ``BadRequest`` (the peer broke the protocol: it loses
score) or ``Refused`` (an ordinary no: quota, funds, expiry).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smartchain.crypto.address import address_of
from smartchain.crypto.keys import verify
from smartchain.modules.storage.module import needs_repair
from smartchain.modules.storage.types import ACTIVE, Deal, deal_column_bytes, epoch_fee, file_id_of
from smartchain.p2p.peers import BadRequest, Refused
from smartchain.state.params import Params
from smartchain.storage.protocol import MAX_PIECE, UploadIntent, intent_bytes

MIN_RESERVATION = 64 * 1024  # bytes a reservation counts against its account's quota, at least

Column = tuple[bytes, int]  # (file_id, frag_index)


@dataclass
class Reservation:
    account: bytes
    intent: UploadIntent
    received: dict[int, int] = field(default_factory=dict)  # segment -> bytes put
    accepted_at: int | None = None  # height of the acceptance we signed

    @property
    def column(self) -> Column:
        return self.intent.file_id, self.intent.frag_index

    @property
    def weight(self) -> int:
        return max(MIN_RESERVATION, self.intent.column_bytes)


def funds_needed(params: Params, price: int, intent: UploadIntent) -> int:
    """What the account must hold: the column's fee here for the deal's epochs (a repair:
    one), and never less than the smallest transaction fee."""
    fee = epoch_fee(price, intent.column_bytes) * max(1, intent.epochs)
    return max(fee, params.tx_base_gas * params.min_gas_price)


class Reservations:
    """The uploads a provider has agreed to, keyed by (peer, file id, fragment index)."""

    def __init__(self, provider: bytes, chain_id: str, quota: int) -> None:
        self.provider, self.chain_id, self.quota = provider, chain_id, quota
        self.book: dict[tuple[bytes, bytes, int], Reservation] = {}

    def pending(self, account: bytes) -> int:
        """Bytes of the account's reservations not yet in a deal."""
        return sum(r.weight for r in self.book.values() if r.account == account)

    def admit(self, peer: bytes, intent: UploadIntent, *, height: int, params: Params,
              price: int, balance: int, deal: Deal | None) -> Reservation:
        """Check an intent against the chain as the provider reads it, and book it."""
        self._check_form(peer, intent, height, params)
        self._check_column(intent, deal)
        account = address_of(intent.client)
        need = funds_needed(params, price, intent)
        if balance < need:
            raise Refused(f"account {account.hex()} holds {balance}, uploading this column "
                          f"needs {need}")
        key = (peer, intent.file_id, intent.frag_index)
        old = self.book.get(key)
        reservation = Reservation(account, intent)
        others = self.pending(account) - (old.weight if old and old.account == account else 0)
        if others + reservation.weight > self.quota:
            raise Refused(f"account {account.hex()} has {others} bytes of uploads pending "
                          f"here; the quota is {self.quota}")
        if old is not None and old.account == account:  # renewed: what was put still counts
            reservation.received = old.received
        self.book[key] = reservation
        return reservation

    def _check_form(self, peer: bytes, intent: UploadIntent, height: int,
                    params: Params) -> None:
        if intent.provider != self.provider:
            raise BadRequest("the upload intent names another provider")
        if intent.peer != peer:
            raise BadRequest("the upload intent is for another P2P identity")
        if not verify(intent.client, intent_bytes(self.chain_id, intent), intent.signature):
            raise BadRequest("the upload intent is not signed by its account")
        if not height <= intent.expires <= height + params.storage_accept_ttl:
            raise Refused(f"an upload intent expiring at height {intent.expires} is not "
                          f"usable at height {height} (at most {params.storage_accept_ttl} "
                          "blocks ahead)")
        if not 1 <= intent.segments <= params.storage_max_segments or \
                intent.column_bytes > intent.segments * MAX_PIECE:
            raise BadRequest(f"an upload of {intent.segments} segments and "
                             f"{intent.column_bytes} bytes is not a column")

    @staticmethod
    def _check_column(intent: UploadIntent, deal: Deal | None) -> None:
        """A new deal of the account's own, or a repair the chain has open."""
        if deal is None:
            if file_id_of(address_of(intent.client), intent.salt) != intent.file_id:
                raise BadRequest("the file id is not the account's (file_id_of(account, salt))")
            if intent.epochs < 1:
                raise BadRequest("an upload for a new deal names its epochs")
            return
        col = next((c for c in deal.columns if c.frag_index == intent.frag_index), None)
        if deal.status != ACTIVE or col is None or col.healthy or not needs_repair(deal):
            raise Refused(f"column {intent.frag_index} of deal {intent.file_id.hex()} is not "
                          "open for repair")
        if (intent.segments, intent.column_bytes) != (deal.segments, deal_column_bytes(deal)):
            raise BadRequest("the upload's segments or bytes are not the deal's")

    def for_put(self, peer: bytes, file_id: bytes, frag_index: int, segment: int, size: int,
                height: int) -> Reservation:
        """The reservation a piece arrives under; raises if there is none or it is used up.
        Counts the piece (``undo_put`` if storing it fails)."""
        r = self.book.get((peer, file_id, frag_index))
        where = f"column {file_id.hex()[:16]}…/{frag_index}"
        if r is None:
            raise BadRequest(f"no upload intent for {where}: send store/intent first")
        if height > r.intent.expires:
            raise Refused(f"the upload intent for {where} expired at height {r.intent.expires}")
        if segment >= r.intent.segments:
            raise BadRequest(f"segment {segment} is past the {r.intent.segments} declared")
        total = sum(n for s, n in r.received.items() if s != segment) + size
        if total > r.intent.column_bytes:
            raise BadRequest(f"{total} bytes for {where}, the intent declared "
                             f"{r.intent.column_bytes}")
        r.received[segment] = size
        return r

    def undo_put(self, r: Reservation, segment: int) -> None:
        r.received.pop(segment, None)

    def accept(self, peer: bytes, file_id: bytes, frag_index: int, segments: int,
               height: int) -> Reservation:
        """The reservation a column is accepted under (its account is the uploader the
        acceptance names); from now on it waits ``storage_accept_ttl`` blocks for its deal."""
        r = self.book.get((peer, file_id, frag_index))
        if r is None:
            raise BadRequest(f"no upload intent for column {file_id.hex()[:16]}…/{frag_index} "
                             "from this peer")
        if segments != r.intent.segments:
            raise BadRequest(f"{segments} segments, the intent declared {r.intent.segments}")
        r.accepted_at = height
        return r

    def settle(self, height: int, ttl: int, pinned: set[Column]) -> list[Column]:
        """Forget reservations accepted into a column the chain has in a deal (``pinned``)
        or that ran out; returns the columns of those that ran out and that nothing else
        needs: their pieces are to be deleted now. (A column being repaired back onto its
        own provider is pinned all along: its booking lasts until accepted.)"""
        done: list[Column] = []
        for key, r in list(self.book.items()):
            end = r.intent.expires if r.accepted_at is None else r.accepted_at + ttl
            if r.column in pinned and r.accepted_at is not None:
                del self.book[key]
            elif height > end:
                del self.book[key]
                done.append(r.column)
        live = {r.column for r in self.book.values()}
        return sorted({c for c in done if c not in live and c not in pinned})
