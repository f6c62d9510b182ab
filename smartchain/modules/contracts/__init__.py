"""The contracts module: wire types in ``types``, state logic in ``module``."""
