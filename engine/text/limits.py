"""Bounds on what users type: short excerpts for messages, and ranges counted before anything is expanded.

A message quotes at most `EXCERPT` characters of what was typed, so a megabyte of input never comes back as a
megabyte of error; a range such as `1-10000000/1` is counted from its ends and step, never listed, before it
is checked against the field's limit.
"""
from __future__ import annotations

import math
import reprlib

EXCERPT = 40  # characters of user input a message may quote
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = EXCERPT
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 5
_SHORT.maxlevel = 2


def excerpt(value, limit: int = EXCERPT) -> str:
    """`value` quoted for a message: whole when short, else its first `limit` characters and its full length."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}… ({len(value):,} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"  # repr() refuses past 4300
    return _SHORT.repr(value)


def count_range(start: float, stop: float, step: float) -> float:
    """How many of start, start + step, ... reach no further than `stop` (stop included), without listing them.

    0 when the step points away from `stop`; math.inf when the count is too large to be a number.
    """
    if step == 0:
        raise ValueError("a range needs a step other than 0")
    if isinstance(start, int) and isinstance(stop, int) and isinstance(step, int):
        return max(0, (stop - start) // step + 1)
    spans = (stop - start) / step
    if math.isnan(spans):
        return math.inf
    if spans == math.inf:
        return math.inf
    return max(0, math.floor(spans + 1e-9) + 1)


def listed(numbers, shown: int = 5) -> str:
    """'3, 4, 5, 6, 7 and 995 more': a list for a message, cut after `shown` items."""
    items = list(numbers)
    head = ", ".join(str(n) for n in items[:shown])
    return head if len(items) <= shown else f"{head} and {len(items) - shown:,} more"


def whole_number(value, name: str, low: int, high: int) -> int:
    """A form's or a file's number as an int from `low` to `high`; text, NaN, infinities and fractions get a
    sentence naming the field."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number from {low} to {high}; got {excerpt(value)}.")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a whole number from {low} to {high}; got {excerpt(value)}.") from None
    if not math.isfinite(number) or number != int(number) or not low <= number <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}; got {excerpt(value)}.")
    return int(number)
