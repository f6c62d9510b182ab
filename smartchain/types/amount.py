"""HPC amounts: exact decimal text <-> integer base units (1 HPC = 10^8 units). No floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

DECIMALS = 8
UNITS_PER_HPC = 10**DECIMALS
MAX_UNITS = 2**128 - 1  # amounts are u128 on chain


class AmountError(ValueError):
    pass


def parse_hpc(text: str) -> int:
    """'1.5' -> 150000000. Rejects negatives, zero, more than 8 decimals and non-numbers."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as exc:
        raise AmountError(f"not a number: {text!r}") from exc
    if not value.is_finite():
        raise AmountError(f"not a finite amount: {text!r}")
    if value <= 0:
        raise AmountError(f"amount must be positive: {text!r}")
    # Integer arithmetic on (digits, exponent): Decimal multiplication would round to 28
    # significant digits and overflow on exponents like 1e999999.
    _, digits, exponent = value.as_tuple()
    coefficient = int("".join(map(str, digits)))
    shift = int(exponent) + DECIMALS
    if value.adjusted() + DECIMALS >= len(str(MAX_UNITS)):
        raise AmountError(f"amount too large: {text!r}")
    if shift >= 0:
        units = coefficient * 10**shift
    elif -shift > len(digits):  # every digit lies beyond the 8th decimal place
        raise AmountError(f"HPC has at most {DECIMALS} decimal places: {text!r}")
    else:
        units, rest = divmod(coefficient, 10**-shift)
        if rest:
            raise AmountError(f"HPC has at most {DECIMALS} decimal places: {text!r}")
    if units > MAX_UNITS:
        raise AmountError(f"amount too large: {text!r}")
    return units


def format_hpc(units: int) -> str:
    """150000000 -> '1.5'; exact, trailing zeros trimmed."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), UNITS_PER_HPC)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:08d}".rstrip("0")


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
