"""Opaque page cursors: two strings the API hands out and takes back, as URL-safe base64 of JSON.

A caller only ever echoes a cursor, so anything that is not one this API made is ``invalid_cursor``
(400), whatever is wrong with it. The second string is a DynamoDB key (an item id, an email), so it
is at most 1 KB of UTF-8 and never empty.
"""

from __future__ import annotations

import base64
import binascii
import json

from chalicelib.domain.errors import BadRequest

MAX_KEY_BYTES = 1024
"""A DynamoDB key is at most 1 KB of UTF-8."""


def pair_cursor(first: str, second: str) -> str:
    text = json.dumps([first, second], ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def invalid_cursor() -> BadRequest:
    return BadRequest("'cursor' is not one this API returned", code="invalid_cursor")


def read_pair_cursor(text: str, max_chars: int) -> tuple[str, str]:
    """The two strings ``pair_cursor`` put in ``text``; ``invalid_cursor`` for anything else, and
    unread when longer than ``max_chars``."""
    if len(text) > max_chars:
        raise invalid_cursor()
    try:
        padded = text + "=" * (-len(text) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))
        if not (
            isinstance(decoded, list)
            and len(decoded) == 2
            and all(isinstance(part, str) for part in decoded)
            and 0 < len(decoded[1].encode("utf-8")) <= MAX_KEY_BYTES
        ):
            raise invalid_cursor()
    except (ValueError, UnicodeError, binascii.Error, RecursionError) as error:
        raise invalid_cursor() from error
    return decoded[0], decoded[1]
