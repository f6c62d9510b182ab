"""Smartchain. Importing the package decides whether its hot path runs compiled (_hotpath)."""

from smartchain import _hotpath

_hotpath.install()
