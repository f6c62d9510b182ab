"""The test framework: what unit and functional tests build on (see docs/testing.md).

- ``harness``: ``NodeProcess`` (one node as a real subprocess), ``wait_until``, log helpers.
- ``netharness``: ``Network`` of validator processes on real sockets, free ports.
- ``faultproxy``: ``ProxyNet``, a TCP proxy between nodes that drops, delays or cuts links.
- ``chain``: ``ChainKit`` and ``ChainNet``, in-process chains driven block by block.
- ``checks``: conservation and invariant checks on a chain or a stopped node's home.
- ``gas_cases``: the adversarial gas cases shared by the gas-schedule test and bench/gas.py.
"""
