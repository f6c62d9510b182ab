"""The storage engine's off-chain side: file layout, provider piece store and protocol,
client upload/download and repair (the chain's side is ``state/modules/storage.py``)."""
