"""The market module: offers, an order book per service type, agreements, escrow, receipts."""
