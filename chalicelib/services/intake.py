"""From raw request to inbox: decode, authenticate, parse, strip secrets, then receive.

One method per door (ThriveCart webhook, Kit webhook, generated operation URL, admin changes).
Each authenticates before it trusts anything in the body, and hands the inbox a payload with every
secret removed. ``decoders`` rebuilds an event from a stored payload, which is how a replay runs
through the same path as the original delivery.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from chalicelib.adapters.kit.parse import (
    LEGACY_QUERY_KEYS,
    decode_json,
    is_envelope,
    parse_envelope,
    parse_legacy,
)
from chalicelib.adapters.kit.verify import token_matches, verify_signature
from chalicelib.adapters.strict_json import decode_object
from chalicelib.adapters.thrivecart.forms import decode_body, ensure_storable
from chalicelib.adapters.thrivecart.parse import parse as parse_thrivecart
from chalicelib.adapters.thrivecart.verify import verify as verify_thrivecart
from chalicelib.config.base import TAG_NAME_MAX_LENGTH
from chalicelib.config.model import MemberflowConfig
from chalicelib.config.secrets import SecretResolver
from chalicelib.domain import hooks
from chalicelib.domain.errors import BadRequest, NotFound, ParseError, PayloadTooLarge, Unauthorized
from chalicelib.domain.events import (
    Ignored,
    KitEvent,
    KitMarketingStatusChanged,
    KitTagAdded,
    KitTagRemoved,
    Person,
    Ping,
    Rejected,
    Source,
)
from chalicelib.domain.inbox import InboxRecord
from chalicelib.domain.kit_legacy import legacy_key
from chalicelib.domain.model import FieldValue, normalize_email, number_problem
from chalicelib.domain.requests import (
    DunningStepDue,
    FieldChangeRequested,
    KitChangesConfirmed,
    ModuleDripDue,
    OfferingChangeRequested,
    OperationRequested,
    RunCancelRequested,
    RunWakeUp,
    SubscriptionPeriodEnded,
    TagsChangeRequested,
)
from chalicelib.domain.rules import Actionable
from chalicelib.domain.text import is_clean
from chalicelib.observability import SECRETS
from chalicelib.services.inbox import Decoder, Delivery, Inbox, Receipt

MAX_TAGS_PER_REQUEST = 50
MAX_REQUEST_BYTES = 128 * 1024
"""Generated operation URLs take an email and a few names; anything this big is not a real call."""
MAX_KEY_LENGTH = 200
"""Idempotency keys: long enough for a UUID or a composite key, short enough for any index."""
MAX_NAME_LENGTH = 200
MAX_REASON_LENGTH = 1000
MAX_TEXT_VALUE_LENGTH = 1000


class Intake:
    def __init__(
        self, inbox: Inbox, config: MemberflowConfig, secrets: SecretResolver, clock: Callable[[], datetime]
    ) -> None:
        self.inbox = inbox
        self.config = config
        self.secrets = secrets
        self.clock = clock

    # --- ThriveCart -----------------------------------------------------------------------------

    def thrivecart(
        self, body: bytes, content_type: str | None, *, base_url: str | None = None
    ) -> Receipt | Ping:
        payload = decode_body(body, content_type)
        if not payload.get("event"):
            return Ping()  # ThriveCart's registration check; nothing to authenticate or store
        if self.config.thrivecart is None:
            raise NotFound("ThriveCart is not configured (no 'thrivecart' section)", code="not_configured")
        secret = self.secrets.resolve(self.config.thrivecart.secret)
        verify_thrivecart(payload, secret=secret, account=self.config.thrivecart.account)
        event = parse_thrivecart(payload)
        if isinstance(event, Ping):
            return event
        # Checked before anything is stored, so a body too large to keep is refused whole (413).
        stored = _stored(ensure_storable(payload))
        return self.inbox.receive(Delivery(Source.THRIVECART, event, stored, base_url=base_url))

    # --- Kit ------------------------------------------------------------------------------------

    def kit(
        self,
        token: str,
        body: bytes,
        query: Mapping[str, str],
        signature: str | None,
        *,
        base_url: str | None = None,
    ) -> tuple[Receipt, ...]:
        """A Kit delivery: every event of a v4 batch on its own, or one legacy hook.

        A batch is applied event by event, in order: an unreadable event is recorded ``failed`` with
        its reason and the others still apply; a fault of ours on one event propagates (5xx) after
        the events before it are committed, so Kit's retry finds those ``duplicate``.
        """
        expected = self.secrets.resolve_optional(self.config.kit.webhook_token)
        if not expected or not token_matches(token, expected):
            raise Unauthorized("Kit webhook token is wrong or kit.webhook_token is not configured")
        payload = decode_json(body)
        envelope = is_envelope(payload)
        if envelope or not self.config.kit.legacy_hooks:
            # With legacy hooks turned off, every body must be signed: the URL token alone is not enough.
            secret = self.secrets.resolve_optional(self.config.kit.webhook_secret)
            verify_signature(body, signature, [secret] if secret else [], now=self.clock().timestamp())
            if not envelope:
                raise ParseError("a signed Kit delivery must be a v4 envelope with 'events'")
            receipts = []
            for raw, event in parse_envelope(payload):
                stored = _stored({"format": "v4", "event": raw})
                delivery = Delivery(Source.KIT, event, stored, base_url=base_url)
                receipts.append(self.inbox.receive(delivery))
            return tuple(receipts)
        kept_query = {k: query[k] for k in LEGACY_QUERY_KEYS if k in query}
        event = self._legacy_event(parse_legacy(payload, kept_query, tag_ids=self.config.kit.tag_ids))
        stored = {"format": "legacy", "query": kept_query, "body": payload, "key": event.idempotency_key}
        return (self.inbox.receive(Delivery(Source.KIT, event, _stored(stored), base_url=base_url)),)

    def _legacy_event(self, event: KitEvent | Ignored) -> KitEvent | Ignored:
        """Key tag and status hooks by what memberflow has seen in Kit (``domain.kit_legacy``)."""
        if not isinstance(event, KitTagAdded | KitTagRemoved | KitMarketingStatusChanged):
            return event
        tag_name = None
        if isinstance(event, KitTagAdded | KitTagRemoved):
            tag_name = event.tag or (self.config.kit.tag_ids.get(event.tag_id) if event.tag_id else None)
            if tag_name is None:
                return event  # cannot be acted on (unknown tag id); recorded as failed under its own key
        contact = self.inbox.contacts.get_contact(normalize_email(event.person.email))
        return replace(event, idempotency_key=legacy_key(event, contact, tag_name, self.clock()), legacy=True)

    # --- generated operation URLs ---------------------------------------------------------------

    def hook(
        self,
        operation_id: str,
        token: str,
        body: bytes,
        content_type: str | None,
        idempotency_key: str | None,
        *,
        base_url: str | None = None,
    ) -> Receipt:
        signing = self.hook_secrets()
        if not signing:
            raise Unauthorized("operation URLs are disabled: hooks.signing_secret is not configured")
        # The token first: without a valid one, a known and an unknown operation look the same.
        if not hooks.token_is_valid(token, operation_id, signing):
            raise Unauthorized("operation URL token is wrong")
        if operation_id not in self.config.operations:
            raise NotFound(f"no operation '{operation_id}'", code="unknown_operation")
        fields = _form_or_json(body, content_type)
        email = _required_text(fields, "email")
        given_key = _key_text(idempotency_key, "Idempotency-Key") or _optional_text(fields, "idempotency_key")
        key = _key_text(given_key, "idempotency_key") or f"auto:{uuid.uuid4().hex}"
        person = Person(email=normalize_email(email), first_name=_optional_text(fields, "first_name"))
        request = OperationRequested(f"{operation_id}:{key}", person, operation_id, via="hook")
        stored = {"operation_id": operation_id, "email": person.email, "via": "hook"}
        if person.first_name:
            stored["first_name"] = person.first_name
        return self.inbox.receive(Delivery(Source.HOOK, request, _stored(stored), base_url=base_url))

    def hook_secrets(self) -> list[str]:
        refs = [self.config.hooks.signing_secret, *self.config.hooks.previous_signing_secrets]
        return [self.secrets.resolve(ref) for ref in refs if ref]

    # --- admin ----------------------------------------------------------------------------------

    def admin_operation(
        self, email: str, operation_id: str, idempotency_key: str | None, *, base_url: str | None = None
    ) -> Receipt:
        if operation_id not in self.config.operations:
            raise NotFound(f"no operation '{operation_id}'", code="unknown_operation")
        person = Person(email=normalize_email(email))
        key = f"{operation_id}:{_key_text(idempotency_key, 'Idempotency-Key') or 'auto:' + uuid.uuid4().hex}"
        request = OperationRequested(key, person, operation_id, via="admin")
        stored = {"operation_id": operation_id, "email": person.email, "via": "admin"}
        return self.inbox.receive(Delivery(Source.ADMIN, request, stored, base_url=base_url))

    def admin_tags(
        self, email: str, body: Mapping[str, Any], idempotency_key: str | None, *, base_url: str | None = None
    ) -> Receipt:
        add = _tag_list(body, "add")
        remove = _tag_list(body, "remove")
        unknown = sorted(set(body) - {"add", "remove"})
        if unknown:
            raise BadRequest(f"unknown key(s) {', '.join(unknown)}; send 'add' and/or 'remove'")
        if not add and not remove:
            raise BadRequest("send at least one tag in 'add' or 'remove'")
        if both := sorted(set(add) & set(remove)):
            raise BadRequest(f"tag(s) both added and removed: {', '.join(both)}")
        person = Person(email=normalize_email(email))
        key = f"tags:{_key_text(idempotency_key, 'Idempotency-Key') or 'auto:' + uuid.uuid4().hex}"
        request = TagsChangeRequested(key, person, add=tuple(add), remove=tuple(remove))
        stored = {"kind": "tags", "email": person.email, "add": add, "remove": remove}
        return self.inbox.receive(Delivery(Source.ADMIN, request, stored, base_url=base_url))

    def admin_offering(
        self,
        email: str,
        offering_id: str,
        *,
        release: bool,
        body: Mapping[str, Any],
        idempotency_key: str | None,
        base_url: str | None = None,
    ) -> Receipt:
        """An operator releases (``release``) or revokes an offering, optionally saying why."""
        if offering_id not in self.config.offerings:
            known = ", ".join(sorted(self.config.offerings)) or "none configured"
            raise NotFound(f"no offering '{offering_id}' (known: {known})", code="unknown_offering")
        unknown = sorted(set(body) - {"reason"})
        if unknown:
            raise BadRequest(f"unknown key(s) {', '.join(unknown)}; send only 'reason'")
        reason = body.get("reason")
        if reason is not None:
            if not isinstance(reason, str) or not reason.strip():
                raise BadRequest("'reason' must be a non-empty string")
            reason = _check_text(reason.strip(), "reason", MAX_REASON_LENGTH)
        person = Person(email=normalize_email(email))
        action = "release" if release else "revoke"
        given = _key_text(idempotency_key, "Idempotency-Key") or "auto:" + uuid.uuid4().hex
        request = OfferingChangeRequested(
            f"offering:{action}:{offering_id}:{given}", person, offering_id, release, reason
        )
        stored: dict[str, Any] = {
            "kind": "offering",
            "email": person.email,
            "offering_id": offering_id,
            "release": release,
        }
        if reason is not None:
            stored["reason"] = reason
        return self.inbox.receive(Delivery(Source.ADMIN, request, stored, base_url=base_url))

    def admin_field(
        self,
        email: str,
        field: str,
        body: Mapping[str, Any],
        idempotency_key: str | None,
        *,
        base_url: str | None = None,
    ) -> Receipt:
        idempotency_key = _key_text(idempotency_key, "Idempotency-Key")
        if not idempotency_key:
            raise BadRequest(
                "an Idempotency-Key header is required for field changes", code="idempotency_key_required"
            )
        spec = self.config.fields.get(field)
        if spec is None:
            known = ", ".join(sorted(self.config.fields)) or "none configured"
            raise NotFound(f"unknown field '{field}' (known: {known})", code="unknown_field")
        unknown = sorted(set(body) - {"delta", "set", "reason"})
        if unknown:
            raise BadRequest(f"unknown key(s) {', '.join(unknown)}; send 'delta' or 'set', and 'reason'")
        if ("delta" in body) == ("set" in body):
            raise BadRequest("send exactly one of 'delta' (a number to add) or 'set' (the new value)")
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise BadRequest("'reason' is required: say why the field changes (it goes in the ledger)")
        _check_text(reason, "reason", MAX_REASON_LENGTH)
        person = Person(email=normalize_email(email))
        delta: Decimal | None = None
        value: FieldValue | None = None
        if "delta" in body:
            if spec.type != "number":
                raise BadRequest(f"field '{field}' holds text; use 'set'")
            delta = _number(body["delta"], "delta")
        elif spec.type == "number":
            value = _number(body["set"], "set")
        elif isinstance(body["set"], str):
            value = _check_text(body["set"], "set", MAX_TEXT_VALUE_LENGTH)
        else:
            raise BadRequest(f"field '{field}' holds text; 'set' must be a string")
        request = FieldChangeRequested(
            f"field:{field}:{idempotency_key}", person, field, reason.strip(), delta=delta, value=value
        )
        stored: dict[str, Any] = {
            "kind": "field",
            "email": person.email,
            "field": field,
            "reason": reason.strip(),
        }
        stored["delta" if delta is not None else "set"] = str(delta if delta is not None else value)
        return self.inbox.receive(Delivery(Source.ADMIN, request, stored, base_url=base_url))

    # --- replay ---------------------------------------------------------------------------------

    def decoders(self) -> dict[str, Decoder]:
        return {
            Source.THRIVECART: self._decode_thrivecart,
            Source.KIT: self._decode_kit,
            Source.HOOK: _decode_request,
            Source.ADMIN: _decode_request,
            Source.AUTOMATION: _decode_request,
            Source.OUTBOX: _decode_request,
            Source.TIMER: _decode_request,
        }

    def _decode_thrivecart(self, record: InboxRecord) -> Actionable | Ignored:
        event = parse_thrivecart(record.payload)
        if isinstance(event, Ping):
            return Ignored(record.idempotency_key, "ping", "registration ping")
        return event

    def _decode_kit(self, record: InboxRecord) -> Actionable | Ignored | Rejected:
        stored = record.payload
        if stored.get("format") == "v4":
            ((_, event),) = parse_envelope({"events": [stored["event"]]})
            return replace(event, idempotency_key=record.idempotency_key)
        legacy = parse_legacy(stored["body"], stored["query"], tag_ids=self.config.kit.tag_ids)
        if isinstance(legacy, KitEvent):
            return replace(legacy, idempotency_key=record.idempotency_key, legacy=True)
        return replace(legacy, idempotency_key=record.idempotency_key)


def _decode_request(record: InboxRecord) -> Actionable:
    p = record.payload
    person = Person(email=p["email"], first_name=p.get("first_name"))
    key = record.idempotency_key
    if record.source == Source.AUTOMATION:
        return RunWakeUp(key, person, p["run_id"], int(p["generation"]), release=bool(p.get("release")))
    if record.source == Source.OUTBOX:
        return KitChangesConfirmed(key, person, tuple(p["added"]), tuple(p["removed"]), p["source_id"])
    if record.source == Source.TIMER and p.get("kind") == "dunning":
        return DunningStepDue(key, person, p["timer_key"], int(p["generation"]))
    if record.source == Source.TIMER and p.get("kind") == "subscription_end":
        return SubscriptionPeriodEnded(key, person, p["timer_key"], int(p["generation"]))
    if record.source == Source.TIMER:
        return ModuleDripDue(key, person, p["offering_id"], p["module_id"], int(p["generation"]))
    if p.get("kind") == "offering":
        return OfferingChangeRequested(key, person, p["offering_id"], bool(p["release"]), p.get("reason"))
    if "run_id" in p:
        return RunCancelRequested(key, person, p["run_id"], p.get("reason", "cancelled by an operator"))
    if "operation_id" in p:
        return OperationRequested(key, person, p["operation_id"], via=p.get("via", "admin"))
    if p.get("kind") == "tags":
        return TagsChangeRequested(key, person, add=tuple(p["add"]), remove=tuple(p["remove"]))
    delta = Decimal(p["delta"]) if "delta" in p else None
    value: FieldValue | None = None
    if "set" in p:
        try:
            value = Decimal(p["set"])
        except InvalidOperation:
            value = p["set"]
    return FieldChangeRequested(key, person, p["field"], p["reason"], delta=delta, value=value)


def _stored(payload: Mapping[str, Any]) -> dict[str, Any]:
    # Belt and braces: adapters drop the fields that carry secrets; this also masks a secret
    # that turns up anywhere else in the body.
    scrubbed: dict[str, Any] = SECRETS.scrub(payload)
    return scrubbed


def _form_or_json(body: bytes, content_type: str | None) -> dict[str, Any]:
    if len(body) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {MAX_REQUEST_BYTES}")
    if not body.strip():
        return {}
    if "json" in (content_type or "") or body.lstrip().startswith(b"{"):
        return decode_object(body)
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def _check_text(value: str, name: str, max_length: int) -> str:
    """``value`` if it can be stored and shown as it is; a 400 naming ``name`` otherwise."""
    if not is_clean(value):
        raise BadRequest(f"'{name}' holds control characters or invalid Unicode", code="invalid_text")
    if len(value) > max_length:
        raise BadRequest(f"'{name}' is longer than {max_length} characters", code="invalid_text")
    return value


def _key_text(value: str | None, name: str) -> str | None:
    return _check_text(value.strip(), name, MAX_KEY_LENGTH) if value and value.strip() else None


def _required_text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{name}' is required", code=f"missing_{name}")
    return _check_text(value.strip(), name, MAX_TEXT_VALUE_LENGTH)


def _optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    return _check_text(value.strip(), name, MAX_NAME_LENGTH)


def _tag_list(body: Mapping[str, Any], key: str) -> list[str]:
    raw = body.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(t, str) and t.strip() for t in raw):
        raise BadRequest(f"'{key}' must be a list of tag names")
    if len(raw) > MAX_TAGS_PER_REQUEST:
        raise BadRequest(f"'{key}' may name at most {MAX_TAGS_PER_REQUEST} tags")
    return list(dict.fromkeys(_check_text(t.strip(), key, TAG_NAME_MAX_LENGTH) for t in raw))


def _number(raw: Any, name: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise BadRequest(f"'{name}' must be a number")
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation as error:
        raise BadRequest(f"'{name}' must be a number, not {str(raw)[:40]!r}") from error
    problem = number_problem(value)
    if problem is not None:
        raise BadRequest(f"'{name}' {problem}", code="invalid_number")
    return value
