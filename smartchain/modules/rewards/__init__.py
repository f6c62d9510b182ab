"""The rewards module: the epoch mint by utilisation and its distribution (docs/rewards.md)."""
