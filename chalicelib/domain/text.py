"""What text memberflow accepts into identities, keys and stored attributes.

JSON may carry lone surrogates (``"\\ud800"``) and control characters such as NUL. Neither belongs in
an email address, an id or a tag name: a lone surrogate cannot be encoded as UTF-8 (so it cannot be
hashed into an event id or written to DynamoDB), and a control character makes two different
strings look alike in every log and console. Parsers use these checks to refuse such input with a
4xx instead of failing later with a 500.
"""

from __future__ import annotations

import unicodedata


def is_encodable(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (which UTF-8 cannot encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def has_control(text: str) -> bool:
    """True if ``text`` holds a control character (NUL, other C0/C1 codes, DEL)."""
    return any(unicodedata.category(char) == "Cc" for char in text)


def is_clean(text: str) -> bool:
    """Fit for an identity, a key or a name: encodable and free of control characters."""
    return is_encodable(text) and not has_control(text)
