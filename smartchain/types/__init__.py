"""Wire and storage types shared by every layer above the codec: transactions, receipts, blocks."""

from smartchain.types.block import Block, BlockHeader
from smartchain.types.tx import Event, Receipt, Transaction

__all__ = ["Block", "BlockHeader", "Event", "Receipt", "Transaction"]
