"""Secrets never reach stored items or logs, whatever path a request takes."""

from __future__ import annotations

import json
import logging
import time
import zlib

import pytest

from chalicelib.adapters.kit.verify import sign
from chalicelib.domain.hooks import hook_token
from chalicelib.observability import configure_logging
from chalicelib.storage.models import ALL_MODELS
from tests.entrypoints.conftest import SECRET_ENV, World
from tests.support.payloads import payload_bytes

pytestmark = pytest.mark.integration

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


def exercise_every_door(world: World) -> None:
    http = world.client.http
    token = SECRET_ENV["KIT_WEBHOOK_TOKEN"]
    for name in ("order_success.txt", "subscription_payment.txt", "refund_full.txt", "cart_abandoned.txt"):
        http.post("/webhooks/thrivecart", headers=FORM, body=payload_bytes("thrivecart", name))
    http.post("/webhooks/thrivecart", headers=FORM, body=payload_bytes("thrivecart", "order_success.txt"))
    # The secret smuggled into another field is masked too.
    smuggled = (
        payload_bytes("thrivecart", "order_success.txt").replace(
            b"customer%5Bcity%5D=", b"customer%5Bnote%5D=tc-secret-FIXTURE&customer%5Bcity%5D="
        )
        + b"&note=tc-secret-FIXTURE"
    )
    http.post(
        "/webhooks/thrivecart", headers=FORM, body=smuggled.replace(b"order_id=1514394", b"order_id=99")
    )
    http.post("/webhooks/thrivecart", headers=FORM, body=b"event=order.success&thrivecart_secret=wrong")
    legacy = payload_bytes("kit", "legacy_subscriber.json")
    http.post(
        f"/webhooks/kit/{token}?event=tag_add&tag=Op%20%E2%80%93%20Add%2050%20Credits",
        headers=JSON,
        body=legacy,
    )
    http.post(f"/webhooks/kit/{token}-wrong?event=tag_add&tag=X", headers=JSON, body=legacy)
    v4 = payload_bytes("kit", "v4_tag_added.json")
    http.post(
        f"/webhooks/kit/{token}",
        headers={**JSON, "X-Kit-Signature": sign(v4, SECRET_ENV["KIT_WEBHOOK_SECRET"], int(time.time()))},
        body=v4,
    )
    http.post(f"/webhooks/kit/{token}", headers={**JSON, "X-Kit-Signature": "t=1,v1=00"}, body=v4)
    path = f"/hooks/add-50-credits/{hook_token(SECRET_ENV['HOOK_SIGNING_SECRET'], 'add-50-credits')}"
    world.post_json(path, {"email": "hook@example.com"})
    world.post_json("/hooks/add-50-credits/wrong", {"email": "hook@example.com"})
    world.admin_post("/admin/contacts/hook@example.com/tags", {"add": ["A"]})
    world.admin_get("/admin/operations")
    world.admin_get("/admin/config")
    world.client.http.get("/admin/events", headers={"Authorization": "Bearer nope"})


def _readable(value: object) -> str:
    """Binary attributes as text, compressed ones (the inbox payload) decompressed first."""
    if not isinstance(value, bytes):
        raise TypeError(type(value).__name__)
    try:
        return zlib.decompress(value).decode("utf-8", "replace")
    except zlib.error:
        return value.decode("utf-8", "replace")


def test_no_secret_in_stored_items_or_logs(
    moto_world: World, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    exercise_every_door(moto_world)

    # The test reads everything stored as an administrator: the function role may not scan most tables.
    assert moto_world.aws is not None
    client = moto_world.aws.admin_client("dynamodb")
    stored = [
        json.dumps(item, ensure_ascii=False, default=_readable)
        for model in ALL_MODELS
        for item in client.scan(TableName=model.Meta.table_name)["Items"]
    ]
    assert len(stored) > 10
    out, err = capfd.readouterr()
    assert '"code":"unauthorized"' in out.replace(" ", "")  # the refusals were logged, and scrubbed
    haystacks = {"stored items": "\n".join(stored), "stdout": out, "stderr": err, "log records": caplog.text}
    for name, secret in SECRET_ENV.items():
        for where, text in haystacks.items():
            assert secret not in text, f"{name} found in {where}"
