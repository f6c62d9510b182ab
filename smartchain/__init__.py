"""Smartchain: a blockchain for sharing compute, storage and bandwidth, paid in HPC."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("smartchain")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0.1.0"

__all__ = ["__version__"]
