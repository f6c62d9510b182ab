"""Amounts: exact decimal text <-> integer base units (1 HPC = 10^8 units; a token has its own
decimals). No floats."""

from __future__ import annotations

import re

DECIMALS = 8
UNITS_PER_HPC: int = 10**DECIMALS
MAX_UNITS = 2**128 - 1  # amounts are u128 on chain


class AmountError(ValueError):
    pass


_HPC_TEXT = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]+))?")


def parse_hpc(text: str) -> int:
    """'1.5' -> 150000000. Plain decimal digits only (no sign, exponent, '_' or spaces),
    at most 8 decimal places, positive, and within the 128-bit amount range."""
    return parse_decimal(text, DECIMALS, unit="HPC", max_units=MAX_UNITS)


def format_hpc(units: int) -> str:
    """150000000 -> '1.5'; exact, trailing zeros trimmed."""
    return format_units(units, DECIMALS)


def parse_decimal(text: str, decimals: int, *, unit: str, max_units: int,
                  allow_zero: bool = False) -> int:
    """Exact decimal text of a ``unit`` with ``decimals`` places -> integer base units.

    Shared by HPC and every token, so one grammar (and one set of messages) holds for all.
    """
    match = _HPC_TEXT.fullmatch(str(text))
    if match is None:
        raise AmountError(f"not a plain decimal {unit} amount (like 1.5): {text!r}")
    whole, frac = match.group(1), match.group(2) or ""
    if len(frac) > decimals:
        places = f"at most {decimals} decimal places" if decimals else "no decimal places"
        raise AmountError(f"{unit} has {places}: {text!r}")
    if len(whole) > len(str(max_units)):
        raise AmountError(f"amount too large: {text!r}")
    units: int = int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or "0")
    if units <= 0 and not (allow_zero and units == 0):
        raise AmountError(f"amount must be positive: {text!r}")
    if units > max_units:
        raise AmountError(f"amount too large: {text!r}")
    return units


def format_units(units: int, decimals: int) -> str:
    """Base units as exact decimal text with ``decimals`` places, trailing zeros trimmed."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{decimals}d}".rstrip("0")


def parse_units(value: object) -> int:
    """A base-unit amount from JSON: a non-negative integer, or a string of digits."""
    if isinstance(value, bool):
        raise AmountError("amount must be an integer number of base units")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        n = int(value)
    else:
        raise AmountError(f"amount must be a non-negative integer of base units: {value!r}")
    if n < 0:
        raise AmountError("amount must not be negative")
    return n
