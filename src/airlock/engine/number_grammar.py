"""GBNF for integers and numbers within bounds (JSON Schema ``minimum``/``maximum``).

A decimal range becomes alternatives over digit strings, the classic range-to-regex
construction: split the range by number of digits, then peel off the first digit where the
bounds differ. ``[13, 271]`` becomes ``"1" [3-9] | [2-9] [0-9] | "1" [0-9]{2} | "2" ( [0-6]
[0-9] | "7" [0-1] )``. Everything stays within the 16 digits the generic ``json-int`` allows.

Numbers (non-integers) take whole-number bounds only: ``[lo, hi]`` is "integer part in
``[lo, hi - 1]`` with any fraction, or exactly ``hi`` with an all-zero fraction" (mirrored
for negatives); bounded numbers are written without an exponent.
"""

from __future__ import annotations

__all__ = ["INT_LIMIT", "integer_body", "number_body"]

INT_LIMIT = 10**16 - 1
"""Largest magnitude generated (``json-int`` allows 16 digits)."""

_FRACTION = '( "." [0-9]{1,15} )?'
_ZERO_FRACTION = '( "." "0"{1,15} )?'


def _alts(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "( " + " | ".join(parts) + " )"


def _same_length(x: str, y: str) -> list[str]:
    """Alternatives matching digit strings of len(x) == len(y) between x and y inclusive."""
    if x == y:
        return [f'"{x}"']
    if len(x) == 1:
        return [f"[{x}-{y}]"]
    if x[0] == y[0]:
        return [f'"{x[0]}" ' + _alts(_same_length(x[1:], y[1:]))]
    rest = len(x) - 1
    low_full = x[1:] == "0" * rest
    high_full = y[1:] == "9" * rest
    middle_low = int(x[0]) + (0 if low_full else 1)
    middle_high = int(y[0]) - (0 if high_full else 1)
    out = []
    if not low_full:
        out.append(f'"{x[0]}" ' + _alts(_same_length(x[1:], "9" * rest)))
    if middle_low <= middle_high:
        digit = f"[{middle_low}-{middle_high}]" if middle_low < middle_high else f'"{middle_low}"'
        out.append(f"{digit} [0-9]{{{rest}}}")
    if not high_full:
        out.append(f'"{y[0]}" ' + _alts(_same_length("0" * rest, y[1:])))
    return out


def _digits(low: int, high: int) -> list[str]:
    """Alternatives matching the decimals of ``low..high`` (0 <= low <= high), no leading
    zeros."""
    out: list[str] = []
    for length in range(len(str(low)), len(str(high)) + 1):
        a = max(low, 10 ** (length - 1) if length > 1 else 0)
        b = min(high, 10**length - 1)
        if a <= b:
            out.extend(_same_length(str(a), str(b)))
    return out


def integer_body(low: int | None, high: int | None) -> str:
    """GBNF body for the integers in ``[low, high]`` (None: unbounded); low <= high."""
    lo = max(-INT_LIMIT, low) if low is not None else -INT_LIMIT
    hi = min(INT_LIMIT, high) if high is not None else INT_LIMIT
    alts: list[str] = []
    if hi >= 0:
        alts.extend(_digits(max(lo, 0), hi))
    if lo < 0:
        alts.append('"-" ' + _alts(_digits(max(1, -hi), -lo)))
    return " | ".join(alts)


def _magnitudes(low: int, high: int | None) -> list[str]:
    """Non-negative decimals with a fraction in ``[low, high]`` (high None: unbounded)."""
    if high is None:
        return [_alts(_digits(low, INT_LIMIT)) + " " + _FRACTION]
    out = []
    if low <= high - 1:
        out.append(_alts(_digits(low, high - 1)) + " " + _FRACTION)
    out.append(f'"{high}" {_ZERO_FRACTION}')
    return out


def number_body(low: int | None, high: int | None) -> str:
    """GBNF body for the numbers in ``[low, high]`` with whole-number (or no) bounds."""
    alts: list[str] = []
    if high is None or high >= 0:
        alts.extend(_magnitudes(max(low, 0) if low is not None else 0, high))
    if low is None or low < 0:
        # -x for x in [max(0, -high), -low]; "-0" and "-0.5" are fine when 0 is in range.
        top = None if low is None else -low
        bottom = 0 if high is None or high >= 0 else -high
        alts.append('"-" ' + _alts(_magnitudes(bottom, top)))
    return " | ".join(alts)
