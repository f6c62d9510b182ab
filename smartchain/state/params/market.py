"""The market module's chain parameters (one group of ``smartchain.state.params.Params``).

Importable on its own (codec only), like ``types``: the state layer assembles ``Params`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U32, U64


@dataclass(frozen=True)
class MarketParams:
    # Resting orders one incoming order may visit (fill, skip or sweep as expired): bounds
    # what matching costs every node; the rest of the order rests in the book.
    market_max_fills_per_order: U32 = 16
    market_fill_gas: U64 = 20_000  # each resting order visited, besides its writes
    market_order_gas: U64 = 10_000  # each order placed: it occupies the book until it goes
    # Each entry of a book side removed earlier in the same block: until the block commits it
    # stays a tombstone that every later scan of that side walks past (about 7 us each).
    market_tombstone_gas: U64 = 1_000
    # Blocks without an accepted receipt after which the provider may close (the consumer
    # stopped countersigning) or, if nothing was ever served, the consumer may.
    market_receipt_grace: U64 = 100
    market_max_expiry_blocks: U64 = 1_000_000  # how far ahead an order may expire
