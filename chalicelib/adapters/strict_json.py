"""The JSON every webhook body must be: one object, UTF-8, nested at most ``MAX_DEPTH`` deep, with no
NaN or Infinity and no number Python cannot hold exactly.

Python's ``json`` accepts ``NaN``, integers of thousands of digits (which ``int()`` then refuses with
a ValueError past 4,300) and nesting until the interpreter's recursion limit; none of that is a
webhook, and each would surface as a 500 further in. Both providers' decoders use this one reader so
that every such body is the same 400.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, Final

from chalicelib.domain.errors import ParseError

MAX_DEPTH: Final = 32
"""Deepest nesting accepted, counting the top-level object as level 1."""
MAX_NUMBER_DIGITS: Final = 100


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``; ParseError saying what is wrong otherwise."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(f"JSON body is not UTF-8 (byte {exc.start})") from None
    try:
        decoded = json.loads(
            text, parse_constant=_reject_constant, parse_int=_bounded_int, parse_float=_finite_float
        )
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (ValueError, RecursionError):
        raise ParseError(f"body is not valid JSON, or is nested more than {MAX_DEPTH} levels deep") from None
    if not isinstance(decoded, dict):
        raise ParseError(
            f"body must be a JSON object, and this one is not an object but {type(decoded).__name__}"
        )
    if _depth(decoded) > MAX_DEPTH:
        raise ParseError(f"JSON body is nested more than {MAX_DEPTH} levels deep")
    return decoded


def _reject_constant(name: str) -> Any:
    raise ParseError(f"body is not valid JSON: {name} is not a JSON number")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise ParseError(f"body is not valid JSON: a number has more than {MAX_NUMBER_DIGITS} digits")
    return int(digits)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ParseError("body is not valid JSON: a number is too large to represent")
    return number


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest
