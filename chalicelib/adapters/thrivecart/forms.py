"""Turn the raw bytes of a ThriveCart webhook into one plain dict, whatever the encoding.

ThriveCart's account-wide webhook normally posts ``application/x-www-form-urlencoded`` with PHP
bracket keys (``customer[address][country]``, ``order[charges][0][amount]``), but JSON and
``multipart/form-data`` deliveries have been reported too, so the body is sniffed as well as the
``Content-Type`` trusted. Bracket keys are rebuilt into nested dicts, and maps whose keys are
exactly ``0..n-1`` become lists, the way PHP's ``$_POST`` would see them. Values are left exactly as
received (form values stay strings, including ``"null"`` and ``"false"``) so the stored payload is
faithful; ``parse.py`` does the type conversion. Anything that cannot be read raises ``ParseError``;
a body over ``MAX_BODY_BYTES`` raises ``PayloadTooLarge`` before any decoding.

A body under the cap can still be too big to store: the payload is stored as ASCII-escaped JSON, in
which a control character sent as ``%01`` (3 bytes) becomes ``\u0001`` (6) and a raw 4-byte character
becomes a 12-byte surrogate pair. ``stored_size(payload) -> int`` is that length for the redacted
payload, ``len(json.dumps(redact(payload), ensure_ascii=True))``, and
``ensure_storable(payload) -> dict`` returns the redacted payload to store, or raises
``PayloadTooLarge`` when ``stored_size`` exceeds ``MAX_STORED_BYTES``. Call it before storing.
"""

from __future__ import annotations

import codecs
import email.errors
import email.parser
import email.policy
import email.utils
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from chalicelib.adapters.strict_json import decode_object
from chalicelib.adapters.thrivecart.verify import redact
from chalicelib.domain.errors import ParseError, PayloadTooLarge
from chalicelib.domain.text import is_encodable

MAX_BODY_BYTES = 128 * 1024
"""Real ThriveCart bodies are a few kilobytes; anything this big is not a webhook."""
MAX_STORED_BYTES = 192 * 1024
"""Cap on ``stored_size``: room for escaping, and well inside DynamoDB's 400 KB item."""

MAX_FIELDS = 10_000
MAX_DEPTH = 32
"""Deepest nesting accepted, counting the top-level dict as level 1."""

_BRACKET_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")


def decode_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    """Decode a webhook body into a dict; raise ``ParseError`` naming what could not be read."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} bytes")
    if not body.strip():
        return {}
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    # A leading "[" is sniffed too: no form key starts with one, and a JSON array gets a clear error.
    if "json" in media_type or body.lstrip().removeprefix(codecs.BOM_UTF8)[:1] in (b"{", b"["):
        return _decode_json(body)
    if media_type == "multipart/form-data":
        return build_nested(_multipart_pairs(body, content_type or ""))
    return build_nested(_urlencoded_pairs(body))


def stored_size(payload: Mapping[str, Any]) -> int:
    """Length of the payload as stored: the redacted payload as ASCII-escaped JSON."""
    return _escaped_length(redact(payload))


def ensure_storable(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The redacted payload to store; PayloadTooLarge if its stored form exceeds ``MAX_STORED_BYTES``."""
    stored = redact(payload)
    size = _escaped_length(stored)
    if size > MAX_STORED_BYTES:
        raise PayloadTooLarge(
            f"payload is {size} bytes once stored as escaped JSON; the limit is {MAX_STORED_BYTES} bytes"
        )
    return stored


def _escaped_length(stored: dict[str, Any]) -> int:
    try:
        return len(json.dumps(stored, ensure_ascii=True, allow_nan=False))
    # Only a payload that did not come from decode_body can fail here (a set, NaN, a cycle).
    except (TypeError, ValueError, RecursionError):
        raise ParseError("payload cannot be stored as JSON") from None


def build_nested(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Rebuild PHP bracket keys into nested dicts and lists; a repeated scalar key keeps the last value.

    Last-wins is what PHP's ``$_POST`` does, and ThriveCart is a PHP application.
    """
    root: dict[str, Any] = {}
    # Highest integer key per container (by id), so ``key[]`` appends in O(1) as PHP does.
    highest: dict[int, int] = {}
    for key, value in pairs:
        path = _split_key(key)
        if len(path) > MAX_DEPTH:
            raise ParseError(f"field {_shorten(key)} is nested more than {MAX_DEPTH} levels deep")
        node = root
        for depth, segment in enumerate(path):
            name = str(highest.get(id(node), -1) + 1) if segment == "" else segment
            if _INDEX.fullmatch(name):
                highest[id(node)] = max(highest.get(id(node), -1), int(name))
            if depth == len(path) - 1:
                if isinstance(node.get(name), dict):
                    raise ParseError(f"field {_shorten(key)} is both a value and a group of fields")
                node[name] = value
            else:
                child = node.setdefault(name, {})
                if not isinstance(child, dict):
                    raise ParseError(f"field {_shorten(key)} is both a value and a group of fields")
                node = child
    return {key: _listify(value) for key, value in root.items()}


def _decode_json(body: bytes) -> dict[str, Any]:
    return decode_object(body)


def _urlencoded_pairs(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"form body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return parse_qsl(
            text, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=MAX_FIELDS
        )
    except UnicodeDecodeError:
        raise ParseError("form body has a percent-encoded value that is not valid UTF-8") from None
    except ValueError:
        raise ParseError(f"form body has more than {MAX_FIELDS} fields") from None


def _multipart_pairs(body: bytes, content_type: str) -> list[tuple[str, str]]:
    if "\r" in content_type or "\n" in content_type or not is_encodable(content_type):
        raise ParseError("Content-Type header is malformed")
    # The email parser needs the boundary from the HTTP header, so it is given a header block.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("utf-8", "surrogateescape")
    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    except (email.errors.MessageError, ValueError, LookupError) as exc:
        raise ParseError(f"multipart body cannot be read: {type(exc).__name__}") from None
    if not message.is_multipart() or not message.get_boundary():
        raise ParseError("multipart body has no boundary or no parts")
    pairs: list[tuple[str, str]] = []
    for part in message.walk():
        if part is message or part.is_multipart() or part.get_content_maintype() != "text":
            continue
        param = part.get_param("name", header="content-disposition")
        if param is None or part.get_filename() is not None:
            continue
        name = email.utils.collapse_rfc2231_value(param)
        raw = part.get_payload(decode=True)
        if not isinstance(raw, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            pairs.append((name, raw.decode(charset)))
        except (LookupError, UnicodeDecodeError):
            raise ParseError(f"multipart field {_shorten(name)} is not valid {_shorten(charset)}") from None
        if len(pairs) > MAX_FIELDS:
            raise ParseError(f"multipart body has more than {MAX_FIELDS} fields")
    return pairs


def _split_key(key: str) -> list[str]:
    """``a[b][]`` -> ``["a", "b", ""]``; a key that is not well-formed bracket notation stays whole."""
    match = _BRACKET_KEY.fullmatch(key)
    if match is None:
        return [key]
    return [match.group(1), *_SEGMENT.findall(match.group(2))]


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {name: _listify(child) for name, child in value.items()}
    if all(str(index) in converted for index in range(len(converted))):
        return [converted[str(index)] for index in range(len(converted))]
    return converted


def _shorten(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
