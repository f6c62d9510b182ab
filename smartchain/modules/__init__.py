"""On-chain modules, one folder each: ``types`` (wire types, importable alone) and ``module``.

This package must stay light: an SDK imports ``smartchain.modules.<name>.types`` without the node.
"""
