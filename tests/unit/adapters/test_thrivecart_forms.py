"""Decoding ThriveCart webhook bodies: form-urlencoded with PHP bracket keys, JSON and multipart."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from chalicelib.adapters.thrivecart.forms import (
    MAX_BODY_BYTES,
    MAX_DEPTH,
    MAX_STORED_BYTES,
    decode_body,
    ensure_storable,
    stored_size,
)
from chalicelib.adapters.thrivecart.verify import redact
from chalicelib.domain.errors import ParseError, PayloadTooLarge
from chalicelib.entrypoints.http import status_of
from tests.support.payloads import payload_bytes

FORM = "application/x-www-form-urlencoded"


def form(pairs: list[tuple[str, str]]) -> bytes:
    return urlencode(pairs).encode("ascii")


def multipart(fields: list[tuple[str, str]], boundary: str = "----tcBoundary7MA4YWxk") -> tuple[bytes, str]:
    chunks = []
    for name, value in fields:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


class TestBracketKeys:
    def test_nested_maps_are_rebuilt_from_bracket_keys(self) -> None:
        body = form([("customer[address][country]", "GB"), ("customer[email]", "ada@example.com")])

        assert decode_body(body, FORM) == {
            "customer": {"address": {"country": "GB"}, "email": "ada@example.com"}
        }

    def test_maps_keyed_zero_to_n_become_lists(self) -> None:
        body = form(
            [
                ("order[charges][0][amount]", "4900"),
                ("order[charges][1][amount]", "1900"),
                ("purchase_map[0]", "product-12"),
                ("purchase_map[1]", "bump-12"),
            ]
        )

        decoded = decode_body(body, FORM)

        assert decoded["order"]["charges"] == [{"amount": "4900"}, {"amount": "1900"}]
        assert decoded["purchase_map"] == ["product-12", "bump-12"]

    def test_indexes_arriving_out_of_order_still_make_an_ordered_list(self) -> None:
        body = form([("purchase_map[1]", "bump-12"), ("purchase_map[0]", "product-12")])

        assert decode_body(body, FORM) == {"purchase_map": ["product-12", "bump-12"]}

    def test_maps_with_gaps_or_non_integer_keys_stay_maps(self) -> None:
        body = form(
            [
                ("sparse[1]", "a"),
                ("sparse[2]", "b"),
                ("padded[00]", "c"),
                ("transactions[product-12]", "false"),
            ]
        )

        assert decode_body(body, FORM) == {
            "sparse": {"1": "a", "2": "b"},
            "padded": {"00": "c"},
            "transactions": {"product-12": "false"},
        }

    def test_empty_brackets_append_like_php(self) -> None:
        body = form([("tags[]", "vip"), ("tags[]", "beta"), ("rows[][name]", "a"), ("rows[][name]", "b")])

        assert decode_body(body, FORM) == {"tags": ["vip", "beta"], "rows": [{"name": "a"}, {"name": "b"}]}

    def test_append_continues_after_the_highest_explicit_index(self) -> None:
        body = form([("tags[0]", "a"), ("tags[1]", "b"), ("tags[]", "c")])

        assert decode_body(body, FORM) == {"tags": ["a", "b", "c"]}

    def test_a_key_that_is_not_bracket_notation_is_kept_whole(self) -> None:
        body = form([("odd[key", "1"), ("other]x", "2"), ("pro-rata", "false")])

        assert decode_body(body, FORM) == {"odd[key": "1", "other]x": "2", "pro-rata": "false"}

    def test_a_repeated_scalar_keeps_the_last_value_as_php_does(self) -> None:
        assert decode_body(b"mode=test&mode=live", FORM) == {"mode": "live"}


class TestValuesStayAsReceived:
    def test_quirky_strings_are_not_converted(self) -> None:
        body = form(
            [("affiliate", "null"), ("checkbox", "false"), ("ok", "true"), ("total", "6900"), ("e", "")]
        )

        assert decode_body(body, FORM) == {
            "affiliate": "null",
            "checkbox": "false",
            "ok": "true",
            "total": "6900",
            "e": "",
        }

    def test_percent_encoding_and_plus_signs_are_decoded(self) -> None:
        body = b"name=Foundation+%E2%80%93+Monthly&email=ada%2Btag%40example.com"

        assert decode_body(body, FORM) == {"name": "Foundation – Monthly", "email": "ada+tag@example.com"}

    def test_fixture_round_trips_the_en_dash_product_name(self) -> None:
        decoded = decode_body(payload_bytes("thrivecart", "order_success.txt"), FORM)

        assert decoded["base_product_name"] == "Foundation – Monthly"
        assert decoded["purchases"] == [
            "Foundation – Monthly",
            "Foundation – Workbook",
            "Inner Circle – Monthly",
        ]
        assert decoded["order"]["charges"][1]["item_type"] == "bump"
        assert decoded["transactions"] == {
            "product-12": "ch_3OqFIXTURE0001",
            "bump-12": "ch_3OqFIXTURE0001",
            "upsell-2": "false",
        }


class TestEncodingDetection:
    def test_empty_body_is_an_empty_dict(self) -> None:
        assert decode_body(b"", FORM) == {}
        assert decode_body(b"  \r\n", None) == {}

    def test_json_is_chosen_by_content_type(self) -> None:
        assert decode_body(b' {"event": "order.success"}', "application/json; charset=utf-8") == {
            "event": "order.success"
        }

    def test_json_is_sniffed_when_the_body_starts_with_a_brace(self) -> None:
        assert decode_body(b'\n{"event": "order.refund", "n": 5}', FORM) == {"event": "order.refund", "n": 5}

    def test_json_values_keep_their_json_types(self) -> None:
        decoded = decode_body(payload_bytes("thrivecart", "order_success.json"), "application/json")

        assert decoded["affiliate"] is None
        assert decoded["order"]["total"] == "6800"
        assert decoded["purchase_map"] == ["product-12", "bump-12", "upsell-2"]

    def test_json_and_form_fixtures_decode_to_the_same_structure_apart_from_nulls(self) -> None:
        from_form = decode_body(payload_bytes("thrivecart", "order_success.txt"), FORM)
        from_json = decode_body(payload_bytes("thrivecart", "order_success.json"), "application/json")

        from_json["affiliate"] = "null"
        from_json["order"]["tax"] = "null"
        from_json["order"]["tracking_id"] = "null"
        assert from_json == from_form

    def test_multipart_text_parts_are_read_with_bracket_keys(self) -> None:
        body, content_type = multipart(
            [
                ("event", "order.success"),
                ("customer[email]", "ada@example.com"),
                ("purchase_map[0]", "product-12"),
            ]
        )

        assert decode_body(body, content_type) == {
            "event": "order.success",
            "customer": {"email": "ada@example.com"},
            "purchase_map": ["product-12"],
        }

    def test_multipart_file_parts_are_skipped(self) -> None:
        boundary = "b0undary"
        body = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="event"\r\n\r\norder.success\r\n'
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="upload"; filename="a.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n\x00\x01\r\n"
            f"--{boundary}--\r\n"
        ).encode("latin-1")

        assert decode_body(body, f"multipart/form-data; boundary={boundary}") == {"event": "order.success"}

    def test_multipart_keeps_utf8_values(self) -> None:
        body, content_type = multipart([("base_product_name", "Foundation – Monthly")])

        assert decode_body(body, content_type) == {"base_product_name": "Foundation – Monthly"}

    def test_multipart_without_boundary_is_a_parse_error(self) -> None:
        with pytest.raises(ParseError, match="boundary"):
            decode_body(b"--x\r\n\r\nhello\r\n--x--", "multipart/form-data")

    def test_a_missing_content_type_falls_back_to_form_decoding(self) -> None:
        assert decode_body(b"event=order.success", None) == {"event": "order.success"}


class TestUnreadableBodies:
    def test_a_key_that_is_both_a_value_and_a_map_is_named(self) -> None:
        with pytest.raises(ParseError, match=r"customer\[email\]"):
            decode_body(form([("customer[email]", "a"), ("customer[email][x]", "b")]), FORM)

    def test_a_map_then_a_value_for_the_same_key_is_a_conflict(self) -> None:
        with pytest.raises(ParseError, match=r"'customer'.*both a value and a group"):
            decode_body(form([("customer[email]", "a"), ("customer", "b")]), FORM)

    def test_bytes_that_are_not_utf8_are_rejected(self) -> None:
        with pytest.raises(ParseError, match="UTF-8"):
            decode_body(b"name=\xff\xfe", FORM)

    def test_percent_encoded_bytes_that_are_not_utf8_are_rejected(self) -> None:
        with pytest.raises(ParseError, match="UTF-8"):
            decode_body(b"name=%FF%FE", FORM)

    @pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
    def test_json_that_is_not_an_object_is_rejected(self, body: bytes) -> None:
        with pytest.raises(ParseError, match="not an object"):
            decode_body(body, "application/json")

    def test_invalid_json_is_rejected(self) -> None:
        with pytest.raises(ParseError, match="not valid JSON"):
            decode_body(b'{"event": ', "application/json")

    def test_json_nan_is_rejected(self) -> None:
        with pytest.raises(ParseError, match="NaN"):
            decode_body(b'{"total": NaN}', "application/json")

    @pytest.mark.parametrize("number", [b"1" * 5000, b"-" + b"9" * 200, b"1e999", b"-1e999"])
    def test_json_numbers_too_large_to_hold_are_rejected(self, number: bytes) -> None:
        with pytest.raises(ParseError, match="number"):
            decode_body(b'{"order": {"total": ' + number + b"}}", "application/json")

    def test_form_keys_nested_too_deep_are_rejected(self) -> None:
        key = "a" + "[b]" * MAX_DEPTH

        with pytest.raises(ParseError, match="nested more than"):
            decode_body(form([(key, "x")]), FORM)

    def test_form_keys_at_the_depth_limit_are_accepted(self) -> None:
        key = "a" + "[b]" * (MAX_DEPTH - 1)

        assert decode_body(form([(key, "x")]), FORM)["a"]["b"]

    def test_json_nested_too_deep_is_rejected(self) -> None:
        body = json.dumps({"a": json.loads("[" * 40 + "]" * 40)}).encode()

        with pytest.raises(ParseError, match="nested more than"):
            decode_body(body, "application/json")

    def test_json_nested_beyond_the_interpreter_limit_is_a_parse_error(self) -> None:
        body = b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}"

        with pytest.raises(ParseError):
            decode_body(body, "application/json")

    @pytest.mark.parametrize(
        "content_type",
        [
            "multipart/form-data; boundary=" + chr(0xD800),
            # In surrogateescape's range, which would otherwise be encoded as a raw byte.
            "multipart/form-data; boundary=" + chr(0xDCFF),
            "multipart/form-data; boundary=a\x00b",
        ],
    )
    def test_a_content_type_with_lone_surrogates_or_nul_is_a_parse_error(self, content_type: str) -> None:
        body = b'--a\r\nContent-Disposition: form-data; name="event"\r\n\r\norder.success\r\n--a--\r\n'

        with pytest.raises(ParseError):
            decode_body(body, content_type)

    def test_too_many_fields_are_rejected(self) -> None:
        with pytest.raises(ParseError, match="more than"):
            decode_body(b"&".join([b"a[]=1"] * 20_000), FORM)


class TestSizeLimits:
    def test_the_body_cap_is_128_kib(self) -> None:
        assert MAX_BODY_BYTES == 128 * 1024

    @pytest.mark.parametrize("content_type", [FORM, "application/json", None])
    def test_a_body_over_the_cap_is_payload_too_large_naming_the_cap(self, content_type: str | None) -> None:
        with pytest.raises(PayloadTooLarge, match=str(MAX_BODY_BYTES)) as caught:
            decode_body(b"a=" + b"x" * MAX_BODY_BYTES, content_type)

        assert status_of(caught.value) == 413

    def test_the_cap_is_checked_before_decoding(self) -> None:
        with pytest.raises(PayloadTooLarge):
            decode_body(b"\xff" * (MAX_BODY_BYTES + 1), "application/json")

    def test_a_body_exactly_at_the_cap_is_read(self) -> None:
        body = b"a=" + b"x" * (MAX_BODY_BYTES - 2)

        assert len(decode_body(body, FORM)["a"]) == MAX_BODY_BYTES - 2


class TestStoredSize:
    def test_stored_size_is_the_length_of_the_redacted_payload_as_ascii_json(self) -> None:
        payload = decode_body(payload_bytes("thrivecart", "order_success.txt"), FORM)

        assert stored_size(payload) == len(json.dumps(redact(payload), ensure_ascii=True))

    def test_ensure_storable_returns_the_redacted_payload(self) -> None:
        payload = decode_body(payload_bytes("thrivecart", "order_success.txt"), FORM)

        stored = ensure_storable(payload)

        assert stored == redact(payload)
        assert "thrivecart_secret" not in stored
        assert "thrivecart_secret" in payload

    def test_control_characters_can_take_a_body_under_the_cap_over_the_stored_cap(self) -> None:
        # Each %01 is 3 bytes on the wire and 6 once stored as \u0001.
        body = b"event=order.success&note=" + b"%01" * 40_000
        payload = decode_body(body, FORM)

        with pytest.raises(PayloadTooLarge, match=str(MAX_STORED_BYTES)) as caught:
            ensure_storable(payload)

        assert status_of(caught.value) == 413

    def test_raw_multibyte_text_is_measured_once_escaped(self) -> None:
        body = b"event=order.success&note=" + "\U0001f600".encode() * 30_000
        payload = decode_body(body, FORM)

        assert stored_size(payload) > MAX_STORED_BYTES
        with pytest.raises(PayloadTooLarge):
            ensure_storable(payload)

    def test_a_payload_exactly_at_the_stored_cap_is_storable(self) -> None:
        payload: dict[str, object] = {"event": "order.success", "note": ""}
        payload["note"] = "x" * (MAX_STORED_BYTES - stored_size(payload))

        assert stored_size(payload) == MAX_STORED_BYTES
        assert ensure_storable(payload) == payload

    def test_the_secret_does_not_count(self) -> None:
        payload = {"event": "order.success", "note": "x" * (MAX_STORED_BYTES - 40)}
        payload["thrivecart_secret"] = "s" * 1000

        assert ensure_storable(payload) == {"event": "order.success", "note": "x" * (MAX_STORED_BYTES - 40)}
