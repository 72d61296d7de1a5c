"""Whatever arrives at a webhook, the answer is 2xx or a JSON 4xx: never a 5xx."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.entrypoints.conftest import SECRET_ENV, World

CONTENT_TYPES = st.sampled_from(
    ["application/x-www-form-urlencoded", "application/json", "multipart/form-data", "text/plain"]
)
SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

form_bodies = st.dictionaries(
    st.sampled_from(
        [
            "event",
            "customer[email]",
            "purchase_map[0]",
            "order_id",
            "invoice_id",
            "mode",
            "order[total]",
            "a[b][c]",
        ]
    )
    | st.text(max_size=12),
    st.sampled_from(["order.success", "order.refund", "null", "false", "12", "x@example.com", "product-12"])
    | st.text(max_size=12),
    max_size=8,
).map(lambda d: urlencode({**d, "thrivecart_secret": SECRET_ENV["THRIVECART_SECRET"]}).encode())


def assert_clean(response: object) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    assert status < 500, response.body  # type: ignore[attr-defined]
    if status >= 400:
        assert set(response.json_body["error"]) == {"code", "message"}  # type: ignore[attr-defined]


@SETTINGS
@given(body=st.binary(max_size=300) | form_bodies, content_type=CONTENT_TYPES)
def test_thrivecart_never_answers_5xx(world: World, body: bytes, content_type: str) -> None:
    assert_clean(
        world.client.http.post("/webhooks/thrivecart", headers={"Content-Type": content_type}, body=body)
    )


@SETTINGS
@given(
    body=st.binary(max_size=200) | st.sampled_from([b"{}", b'{"subscriber": {}}', b'{"events": []}']),
    query=st.sampled_from(["", "?event=tag_add", "?event=tag_add&tag=VIP", "?event=zzz", "?tag=1"]),
)
def test_kit_never_answers_5xx(world: World, body: bytes, query: str) -> None:
    path = f"/webhooks/kit/{SECRET_ENV['KIT_WEBHOOK_TOKEN']}{query}"
    assert_clean(world.client.http.post(path, headers={"Content-Type": "application/json"}, body=body))
