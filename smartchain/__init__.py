"""Smartchain: a blockchain for sharing compute, storage and bandwidth, paid in HPC.
Importing the package decides whether its hot path runs compiled (_hotpath)."""

from importlib.metadata import PackageNotFoundError, version

from smartchain import _hotpath

try:
    __version__ = version("smartchain")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0.1.0"

_hotpath.install()

__all__ = ["__version__"]
