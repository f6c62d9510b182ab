"""The bank module: wire types in ``types``, state logic in ``module``."""
