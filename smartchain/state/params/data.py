"""The data module's chain parameters (one group of ``smartchain.state.params.Params``).

Importable on its own (codec only): the state layer assembles ``Params`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U32, U64, U128


@dataclass(frozen=True)
class DataParams:
    # An owner locks this much HPC per asset to sell it: a proven wrong key costs part of it,
    # and an asset whose bond fell below this sells nothing until topped up.
    data_asset_bond: U128 = 10 * 10**8
    data_wrong_key_penalty: U128 = 5 * 10**8  # HPC from the bond to the wronged buyer
    data_delivery_blocks: U64 = 600  # a purchase with no key by then is refunded
    data_dispute_blocks: U64 = 100  # after delivery: time to prove a wrong key before payout
    data_max_batches: U32 = 256  # per purchase: bounds a delivery's size and its checks
    data_batch_gas: U64 = 20_000  # a batch record is kept for ever
