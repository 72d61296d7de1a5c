"""The inbox's compressed JSON: round trips, reads every stream it ever wrote, and stays stable."""

from __future__ import annotations

import json
import zlib
from urllib.parse import parse_qsl

from chalicelib.storage.dynamo.compression import compress_json, decompress_json, dictionary_id
from tests.support.payloads import payload_text


def _order() -> dict[str, str]:
    return dict(parse_qsl(payload_text("thrivecart", "order_success.txt"), keep_blank_values=True))


def test_a_payload_round_trips() -> None:
    data = {"order": _order(), "unicode": "Ada – Lovelace ✓", "nested": [1, 2.5, None, True, {"a": []}]}
    assert decompress_json(compress_json(data)) == data


def test_a_plain_zlib_stream_is_read_too() -> None:
    data = {"event": "order.success"}
    assert decompress_json(zlib.compress(json.dumps(data).encode())) == data


def test_the_dictionary_makes_an_order_smaller_than_zlib_alone() -> None:
    order = _order()
    plain = zlib.compress(json.dumps(order, sort_keys=True, separators=(",", ":")).encode(), 9)
    assert len(compress_json(order)) < len(plain) * 0.8


def test_the_dictionary_never_changes() -> None:
    # Stored payloads name their dictionary by its Adler-32 and can be read only with these exact
    # bytes: a better dictionary is added beside this one, never in its place.
    assert dictionary_id() == 3057202007
