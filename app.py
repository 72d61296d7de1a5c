"""memberflow's HTTP and Lambda entrypoints.

Each route reads the raw request, calls one service, and renders the result as JSON
(``chalicelib.entrypoints``); decisions live in the services and the domain. Nothing here touches
DynamoDB, boto3 or pynamodb, and importing this module loads none of them, nor the config package:
they come with the first container (``chalicelib.bootstrap``), so a cold start pays for them once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalice.app import Chalice, Rate, Response

from chalicelib import bootstrap
from chalicelib.domain.automations.runs import RunStatus
from chalicelib.domain.errors import BadRequest
from chalicelib.domain.events import Ping, Source
from chalicelib.domain.inbox import Status
from chalicelib.domain.outbox import OutboxKind, OutboxStatus
from chalicelib.entrypoints import access_views
from chalicelib.entrypoints import admin_views as views
from chalicelib.entrypoints import member_pages as pages
from chalicelib.entrypoints.http import (
    api,
    base_url,
    edge,
    header,
    json_body,
    json_response,
    path_email,
    path_id,
    raw_body,
    require_bearer,
)

if TYPE_CHECKING:
    from chalicelib.services.inbox import Receipt

app = Chalice(app_name="memberflow")
app.register_middleware(edge, "http")

WEBHOOK_CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/json",
    "multipart/form-data",
    "text/plain",
]
ADMIN_CONTENT_TYPES = ["application/json"]
MEMBER_API_CONTENT_TYPES = ["application/json"]
FORM_CONTENT_TYPES = ["application/x-www-form-urlencoded"]


def _request() -> Any:
    return app.current_request


def _admin() -> bootstrap.Container:
    c = bootstrap.container()
    require_bearer(_request(), c.admin_token())
    return c


def _base(c: bootstrap.Container) -> str:
    """Where the links in emails this request causes point: PUBLIC_BASE_URL, else this API."""
    return base_url(_request(), c.settings.public_base_url)


def _receipt(receipt: Receipt, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"result": receipt.result, "event_id": receipt.event_id, **extra}
    if receipt.reason:
        body["reason"] = receipt.reason
    return body


# --- Webhooks ------------------------------------------------------------------------------------


@app.route("/webhooks/thrivecart", methods=["HEAD"])
@api
def thrivecart_registration_check() -> Response:
    return Response(body="", status_code=200)


@app.route("/webhooks/thrivecart", methods=["POST"], content_types=WEBHOOK_CONTENT_TYPES)
@api
def thrivecart_webhook() -> Response:
    request = _request()
    c = bootstrap.container()
    outcome = c.intake.thrivecart(raw_body(request), header(request, "Content-Type"), base_url=_base(c))
    if isinstance(outcome, Ping):
        return json_response({"result": "ping", "event_id": None})
    return json_response(_receipt(outcome))


@app.route("/webhooks/kit/{token}", methods=["POST"], content_types=WEBHOOK_CONTENT_TYPES)
@api
def kit_webhook(token: str) -> Response:
    request = _request()
    c = bootstrap.container()
    receipts = c.intake.kit(
        token,
        raw_body(request),
        dict(request.query_params or {}),
        header(request, "X-Kit-Signature"),
        base_url=_base(c),
    )
    if len(receipts) == 1:
        return json_response(_receipt(receipts[0]))
    return json_response({"result": "accepted", "events": [_receipt(r) for r in receipts]})


@app.route("/hooks/{operation_id}/{token}", methods=["POST"], content_types=WEBHOOK_CONTENT_TYPES)
@api
def operation_hook(operation_id: str, token: str) -> Response:
    request = _request()
    c = bootstrap.container()
    receipt = c.intake.hook(
        operation_id,
        token,
        raw_body(request),
        header(request, "Content-Type"),
        header(request, "Idempotency-Key"),
        base_url=_base(c),
    )
    return json_response(_operation_receipt(receipt, operation_id))


def _operation_receipt(receipt: Receipt, operation_id: str) -> dict[str, Any]:
    if receipt.refusal is not None:
        raise receipt.refusal
    result = receipt.result
    if result == "accepted":
        outcomes = [o.result for o in receipt.operations if o.operation_id == operation_id]
        result = outcomes[0] if outcomes else "applied"
    body = _receipt(receipt)
    body["result"] = result
    if receipt.contact is not None:
        body["email"] = receipt.contact.email
    return body


# --- Admin: contacts ---------------------------------------------------------------------------


@app.route("/admin/contacts/{email}", methods=["GET"])
@api
def get_contact(email: str) -> Response:
    c = _admin()
    return json_response(views.contact_view(c.queries.contact(path_email(email)), c.loaded.model))


@app.route("/admin/contacts/{email}/timeline", methods=["GET"])
@api
def get_timeline(email: str) -> Response:
    c = _admin()
    timeline = c.queries.timeline(path_email(email))
    return json_response(views.timeline_view(timeline.email, timeline.entries, timeline.outbound))


@app.route("/admin/contacts/{email}/ledger", methods=["GET"])
@api
def get_ledger(email: str) -> Response:
    c = _admin()
    ledger = c.queries.ledger(path_email(email), (_request().query_params or {}).get("field"))
    return json_response(views.ledger_view(ledger.email, ledger.entries, ledger.field))


@app.route("/admin/contacts/{email}/tags", methods=["POST"], content_types=ADMIN_CONTENT_TYPES)
@api
def change_tags(email: str) -> Response:
    c = _admin()
    request = _request()
    receipt = c.intake.admin_tags(
        path_email(email), json_body(request), header(request, "Idempotency-Key"), base_url=_base(c)
    )
    return _change_response(c, receipt)


@app.route("/admin/contacts/{email}/fields/{field}", methods=["POST"], content_types=ADMIN_CONTENT_TYPES)
@api
def change_field(email: str, field: str) -> Response:
    c = _admin()
    request = _request()
    receipt = c.intake.admin_field(
        path_email(email), field, json_body(request), header(request, "Idempotency-Key"), base_url=_base(c)
    )
    return _change_response(c, receipt)


@app.route(
    "/admin/contacts/{email}/operations/{operation_id}", methods=["POST"], content_types=ADMIN_CONTENT_TYPES
)
@api
def run_operation(email: str, operation_id: str) -> Response:
    c = _admin()
    receipt = c.intake.admin_operation(
        path_email(email), operation_id, header(_request(), "Idempotency-Key"), base_url=_base(c)
    )
    body = _operation_receipt(receipt, operation_id)
    return _with_contact(c, receipt, body)


@app.route(
    "/admin/contacts/{email}/offerings/{offering_id}/release",
    methods=["POST"],
    content_types=ADMIN_CONTENT_TYPES,
)
@api
def release_offering(email: str, offering_id: str) -> Response:
    return _change_offering(email, offering_id, release=True)


@app.route(
    "/admin/contacts/{email}/offerings/{offering_id}/revoke",
    methods=["POST"],
    content_types=ADMIN_CONTENT_TYPES,
)
@api
def revoke_offering(email: str, offering_id: str) -> Response:
    return _change_offering(email, offering_id, release=False)


def _change_offering(email: str, offering_id: str, *, release: bool) -> Response:
    c = _admin()
    request = _request()
    receipt = c.intake.admin_offering(
        path_email(email),
        offering_id,
        release=release,
        body=json_body(request),
        idempotency_key=header(request, "Idempotency-Key"),
        base_url=_base(c),
    )
    return _change_response(c, receipt)


def _change_response(c: bootstrap.Container, receipt: Receipt) -> Response:
    if receipt.refusal is not None:
        raise receipt.refusal
    return _with_contact(c, receipt, _receipt(receipt))


def _with_contact(c: bootstrap.Container, receipt: Receipt, body: dict[str, Any]) -> Response:
    contact = receipt.contact
    if contact is None and receipt.result == "duplicate":
        contact = c.queries.contact_of_event(receipt.event_id)
    if contact is not None:
        body["contact"] = views.contact_view(contact, c.loaded.model)
    return json_response(body)


# --- Admin: events, config, operations ---------------------------------------------------------


@app.route("/admin/events", methods=["GET"])
@api
def list_events() -> Response:
    c = _admin()
    params = _request().query_params or {}
    status = params.get("status")
    if status is not None and status not in {s.value for s in Status}:
        raise BadRequest(f"unknown status '{status}' (one of: {', '.join(s.value for s in Status)})")
    source = params.get("source")
    if source is not None and source not in {s.value for s in Source}:
        raise BadRequest(f"unknown source '{source[:40]}' (one of: {', '.join(s.value for s in Source)})")
    page = c.queries.events(
        status=Status(status) if status else None,
        source=source,
        limit=_limit(params),
        cursor=params.get("cursor"),
    )
    return json_response(
        {"events": [views.event_view(r) for r in page.items], "next_cursor": page.next_cursor}
    )


def _limit(params: Any) -> int:
    text = params.get("limit", "50")
    # ASCII digits and short: isdigit() alone takes "²", and int() refuses more than 4300 digits.
    if not (text.isascii() and text.isdigit() and len(text) <= 6) or not 1 <= int(text) <= 200:
        raise BadRequest("limit must be a whole number from 1 to 200")
    return int(text)


@app.route("/admin/events/{event_id}", methods=["GET"])
@api
def get_event(event_id: str) -> Response:
    c = _admin()
    return json_response(views.event_view(c.queries.event(event_id), with_payload=True))


@app.route("/admin/events/{event_id}/replay", methods=["POST"], content_types=ADMIN_CONTENT_TYPES)
@api
def replay_event(event_id: str) -> Response:
    c = _admin()
    receipt = c.inbox.replay(event_id)
    return json_response(_receipt(receipt))


@app.route("/admin/config", methods=["GET"])
@api
def get_config() -> Response:
    c = _admin()
    return json_response(views.config_view(c.loaded))


@app.route("/admin/operations", methods=["GET"])
@api
def list_operations() -> Response:
    c = _admin()
    secrets = c.intake.hook_secrets()
    url = base_url(_request(), c.settings.public_base_url)
    return json_response(views.operations_view(c.loaded.model, url, secrets[0] if secrets else None))


@app.route("/admin/tags", methods=["GET"])
@api
def tag_map() -> Response:
    c = _admin()
    from chalicelib.config.tagmap import tag_map as build_tag_map

    return json_response(build_tag_map(c.loaded.model))


# --- Admin: automations and runs ---------------------------------------------------------------


@app.route("/admin/automations", methods=["GET"])
@api
def list_automations() -> Response:
    c = _admin()
    return json_response(views.automations_view(c.inbox.book()))


@app.route("/admin/automations/{automation_id}/migrate", methods=["POST"], content_types=ADMIN_CONTENT_TYPES)
@api
def migrate_automation(automation_id: str) -> Response:
    c = _admin()
    body = json_body(_request()) if _request().raw_body else {}
    unknown = sorted(set(body) - {"dry_run", "step_map"})
    if unknown:
        raise BadRequest(f"unknown key(s) {', '.join(unknown)}; send 'dry_run' and/or 'step_map'")
    dry_run = body.get("dry_run", True)
    step_map = body.get("step_map", {})
    if not isinstance(dry_run, bool):
        raise BadRequest("'dry_run' must be true or false")
    if not isinstance(step_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in step_map.items()
    ):
        raise BadRequest("'step_map' must map old step ids to new step ids")
    migration = c.automations.migrate(automation_id, dry_run=dry_run, step_map=step_map)
    return json_response(views.migration_view(migration))


@app.route("/admin/runs", methods=["GET"])
@api
def list_runs() -> Response:
    c = _admin()
    params = _request().query_params or {}
    status = params.get("status")
    if status is not None and status not in {s.value for s in RunStatus}:
        raise BadRequest(f"unknown status '{status}' (one of: {', '.join(s.value for s in RunStatus)})")
    limit = _limit(params)
    runs = c.queries.runs(
        email=params.get("email") or None,
        automation=params.get("automation") or None,
        status=RunStatus(status) if status else None,
        limit=limit,
    )
    return json_response({"runs": [views.run_view(run, with_history=False) for run in runs]})


@app.route("/admin/runs/{run_id}", methods=["GET"])
@api
def get_run(run_id: str) -> Response:
    c = _admin()
    return json_response(views.run_view(c.automations.get(run_id)))


@app.route("/admin/runs/{run_id}/retry", methods=["POST"], content_types=ADMIN_CONTENT_TYPES)
@api
def retry_run(run_id: str) -> Response:
    c = _admin()
    return json_response(views.run_view(c.automations.retry(run_id)))


@app.route("/admin/runs/{run_id}/cancel", methods=["POST"], content_types=ADMIN_CONTENT_TYPES)
@api
def cancel_run(run_id: str) -> Response:
    c = _admin()
    body = json_body(_request()) if _request().raw_body else {}
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or not reason.strip()):
        raise BadRequest("'reason' must be a non-empty string")
    return json_response(views.run_view(c.automations.cancel(run_id, reason)))


# --- Admin: outbox ------------------------------------------------------------------------------


@app.route("/admin/outbox", methods=["GET"])
@api
def list_outbox() -> Response:
    c = _admin()
    params = _request().query_params or {}
    email = params.get("email")
    if not email:
        # The table is keyed by item and indexed by contact and by due time: a listing of every
        # contact's items would be a scan, so the contact is required.
        raise BadRequest("'email' is required: the outbox is listed one contact at a time")
    kind = params.get("kind")
    if kind is not None and kind not in {k.value for k in OutboxKind}:
        raise BadRequest(f"unknown kind '{kind[:40]}' (one of: {', '.join(k.value for k in OutboxKind)})")
    status = params.get("status")
    if status is not None and status not in {s.value for s in OutboxStatus}:
        raise BadRequest(
            f"unknown status '{status[:40]}' (one of: {', '.join(s.value for s in OutboxStatus)})"
        )
    page = c.queries.outbox(
        email,
        kind=OutboxKind(kind) if kind else None,
        status=OutboxStatus(status) if status else None,
        limit=_limit(params),
        cursor=params.get("cursor") or None,
    )
    body: dict[str, Any] = {"items": [views.outbox_item_view(item) for item in page.items]}
    if page.next_cursor is not None:
        body["next_cursor"] = page.next_cursor
    return json_response(body)


@app.route("/admin/outbox/{item_id}", methods=["GET"])
@api
def get_outbox_item(item_id: str) -> Response:
    c = _admin()
    return json_response(views.outbox_item_view(c.queries.outbox_item(path_id(item_id)), with_payload=True))


@app.route("/admin/outbox/{item_id}/retry", methods=["POST"], content_types=ADMIN_CONTENT_TYPES)
@api
def retry_outbox_item(item_id: str) -> Response:
    c = _admin()
    return json_response(views.outbox_item_view(c.outbox_admin.retry(path_id(item_id)), with_payload=True))


# --- Admin: Kit -------------------------------------------------------------------------------


@app.route("/admin/kit", methods=["GET"])
@api
def kit_status() -> Response:
    c = _admin()
    return json_response(views.kit_view(c.kit_admin.status()))


@app.route("/admin/kit/resync", methods=["POST"], content_types=ADMIN_CONTENT_TYPES)
@api
def kit_resync() -> Response:
    c = _admin()
    page = c.kit_resync.resync(json_body(_request()))
    return json_response({"queued": page.queued, "next_cursor": page.next_cursor}, 202)


# --- Members -----------------------------------------------------------------------------------


@app.route("/members/set-password", methods=["GET"])
@pages.page
def set_password_page() -> Response:
    token = (_request().query_params or {}).get("token", "")
    return pages.set_password_form(bootstrap.container().members.check_link(token), token)


@app.route("/members/set-password", methods=["POST"], content_types=FORM_CONTENT_TYPES)
@pages.page
def set_password() -> Response:
    return pages.submit_password(bootstrap.container().members, raw_body(_request()))


@app.route("/members/login", methods=["POST"], content_types=MEMBER_API_CONTENT_TYPES)
@api
def member_login() -> Response:
    email, password = pages.credentials(json_body(_request()))
    return pages.login_answer(bootstrap.container().members.login(email, password))


@app.route("/members/session", methods=["GET"])
@api
def member_session() -> Response:
    token = pages.session_token(header(_request(), "Authorization"))
    return pages.session_answer(bootstrap.container().members.session(token))


@app.route("/members/logout", methods=["POST"], content_types=MEMBER_API_CONTENT_TYPES)
@api
def member_logout() -> Response:
    token = pages.session_token(header(_request(), "Authorization"))
    bootstrap.container().members.logout(token)
    return pages.logged_out()


@app.route("/members/reset", methods=["POST"], content_types=MEMBER_API_CONTENT_TYPES)
@api
def member_reset() -> Response:
    request = _request()
    email = pages.reset_email_of(json_body(request))
    c = bootstrap.container()
    c.members.reset(email, base_url(request, c.settings.public_base_url))
    return pages.reset_answer()


# --- Access API (the membership site) -----------------------------------------------------------


def _access() -> bootstrap.Container:
    c = bootstrap.container()
    require_bearer(_request(), c.access_token(), "access API is disabled: ACCESS_API_TOKEN is not set")
    return c


def _offering_names(c: bootstrap.Container) -> dict[str, str]:
    return {oid: offering.name for oid, offering in c.loaded.setup.offerings.items()}


@app.route("/access/{email}", methods=["GET"])
@api
def get_access(email: str) -> Response:
    c = _access()
    return json_response(access_views.access_view(c.offerings.access(path_email(email)), _offering_names(c)))


@app.route("/access/{email}/{offering_id}/{module_id}", methods=["GET"])
@api
def get_module_access(email: str, offering_id: str, module_id: str) -> Response:
    c = _access()
    access = c.offerings.module_access(path_email(email), offering_id, module_id)
    return json_response(access_views.module_access_view(access))


# --- Timers ------------------------------------------------------------------------------------


@app.lambda_function(name="fire_timer")
@bootstrap.flushes_metrics
def fire_timer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions calls this when a timer is due (input: ``Timer.as_input()``); routed by kind."""
    return bootstrap.container().timers.fire(event)


@app.schedule(Rate(5, unit=Rate.MINUTES), name="sweep_runs")
@bootstrap.flushes_metrics
def sweep_runs(event: Any) -> dict[str, int]:
    """Wakes overdue runs, releases held runs of live automations, finishes events left unfinished,
    then fires contacts' overdue timers (drip, period end, dunning) whose start was lost."""
    c = bootstrap.container()
    budget = _time_left(_context(event))
    deadline = time.monotonic() + budget
    counts = c.automations.sweep(budget_seconds=budget).as_dict()
    return {**counts, **c.contact_timers.sweep(deadline=deadline).as_dict()}


OUTBOX_STREAM = (
    "arn:aws:dynamodb:us-east-1:000000000000:table/memberflow-outbox/stream/set-by-the-merge-template"
)
"""Chalice needs a stream ARN here; the merge template replaces it with the outbox table's own."""


@app.on_dynamodb_record(
    stream_arn=OUTBOX_STREAM, batch_size=10, starting_position="LATEST", name="deliver_outbox"
)
@bootstrap.flushes_metrics
def deliver_outbox(event: Any) -> dict[str, int]:
    """New outbox items, from the table's stream: sent within seconds of their commit."""
    from chalicelib.services.delivery import new_item_ids

    # Read raw: Chalice's record parser fails a whole batch on one record lacking a field it wants.
    records = event.to_dict().get("Records", [])
    ids = new_item_ids((r.get("eventName", ""), r.get("dynamodb", {}).get("Keys", {})) for r in records)
    from chalicelib.services.delivery import STREAM_WAIT_BUDGET

    worker = bootstrap.container().delivery(wait_budget=STREAM_WAIT_BUDGET)
    return worker.deliver_ids(ids, time_left=_remaining(_context(event))).as_dict()


@app.schedule(Rate(1, unit=Rate.MINUTES), name="retry_outbox")
@bootstrap.flushes_metrics
def retry_outbox(event: Any) -> dict[str, int]:
    """The retry trigger: whatever is due (retries, items a dead worker held, rate-limited ones)."""
    worker = bootstrap.container().delivery()
    return worker.sweep(time_left=_remaining(_context(event))).as_dict()


def _context(event: Any) -> Any:
    # Chalice hands an event handler its Lambda context on the event; ``app.lambda_context`` is set
    # only while a route is served, so in any other handler it is absent or stale.
    return getattr(event, "context", None)


def _remaining(context: Any, budget_seconds: float = 60.0) -> Callable[[], float]:
    """Seconds left before the Lambda's timeout; without a Lambda context, of ``budget_seconds``."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is not None:
        return lambda: float(remaining()) / 1000
    deadline = time.monotonic() + budget_seconds
    return lambda: deadline - time.monotonic()


def _time_left(context: Any, margin_seconds: float = 15.0) -> float:
    # Imported here, after the container: the services load the config package, which a cold start defers.
    from chalicelib.services.automations import SWEEP_BUDGET_SECONDS

    # Stop early enough that the last item finishes before Lambda's timeout; the next sweep goes on.
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return SWEEP_BUDGET_SECONDS
    left = float(remaining()) / 1000 - margin_seconds
    return max(1.0, min(SWEEP_BUDGET_SECONDS, left))
