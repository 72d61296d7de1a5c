"""``memberflow kit hooks``: the Kit webhooks the config needs, compared with Kit's and synced.

Two ways to hear Kit, chosen by the caller (the CLI's ``--mode``): legacy rules, one per event and
tag, or one v4 webhook endpoint subscribed to event types. This module plans and syncs both.

Legacy rules.

The comparison is pure: ``plan_hooks`` takes what the config needs (``chalicelib.config.kit_hooks``),
where this app listens (``HookTarget``: its public URL and the webhook token), Kit's tags and Kit's
webhooks, and says which needed rules Kit has, which it misses and which of Kit's rules are ours but
no longer needed. ``sync_hooks`` is the thin shell that reads Kit, plans, and makes the calls.

A Kit rule is *ours* when its URL points at this app's Kit webhook route, ``{url}/webhooks/kit/``,
whatever token follows: a rule carrying an old token is this app's too, refused since the token
changed, and sync replaces it. A rule pointing anywhere else is never changed; when it has the rule
of a missing one, it is reported as pointing elsewhere (an old stage, or the chain memberflow
replaces). An ours rule matches a needed one when Kit's side (event and tag id) and the URL's side
(token, ``event``, ``tag`` by name, or by an id mapped under ``kit.tag_ids``) both say the same
thing; any other ours rule is extra, including a second copy of a needed one.

The v4 endpoint. ``plan_endpoint`` takes the event types the config needs
(``chalicelib.config.kit_hooks.endpoint_events``), Kit's endpoints and Kit's legacy rules. An
endpoint is ours by the same URL prefix. One of ours is kept (the one closest to what is wanted) and
brought in step: pointed at ``{url}/webhooks/kit/{token}``, subscribed to exactly the needed types
(Kit replaces the whole set on update), and active; the update keeps its signing secret, which a
delete and create would change. Every other endpoint of ours is extra, and so is every legacy rule
of ours: the endpoint delivers the same tag events, and a tag event heard twice, once through each,
can run a trigger tag's operation twice (a legacy ``tag_add`` after the v4 one is recognised as a
restatement, but not the other way round). Endpoints pointing elsewhere are never changed; while
ours is missing, those subscribed to a needed type are reported. Kit shows a new endpoint's signing
secret only in its create answer, so ``sync_endpoint`` creates one only with a ``SecretKeeper`` to
hand it to, reserved before the call.

The webhook token is a secret: ``HookTarget.mask`` is how any URL is shown, with the token replaced,
and a URL that is not ours shows only its host, since its path may hold someone else's secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from chalicelib.adapters.kit.client import KitError
from chalicelib.adapters.kit.resources import (
    CreatedWebhookEndpoint,
    Tag,
    Webhook,
    WebhookEndpoint,
    WebhookEvent,
)
from chalicelib.config.kit_hooks import V4_EVENT_TYPES, NeededEvent, NeededHook

ROUTE: Final = "/webhooks/kit/"
MASK: Final = "***"
_TOKEN_CHARS: Final = re.compile(r"[A-Za-z0-9._~-]+")
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
ENDPOINT_NAME: Final = "memberflow"
ENDPOINT_DESCRIPTION: Final = "Kit events for memberflow; kept in step by memberflow kit hooks sync"


class BadTarget(ValueError):
    """The app URL or the webhook token cannot make a hook URL; the message says why, never the token."""


@dataclass(frozen=True)
class HookTarget:
    """Where this app hears Kit: ``{base_url}/webhooks/kit/{token}``."""

    base_url: str
    token: str = field(repr=False)

    @classmethod
    def parse(cls, url: str, token: str) -> HookTarget:
        """Checks ``--url`` (https, or http on this machine; no query) and the token (URL-safe)."""
        parts = urlsplit(url.strip())
        if not parts.hostname or parts.query or parts.fragment or parts.username or parts.password:
            raise BadTarget(f"--url must be the app's base URL, like https://api.example.com, not {url!r}")
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
            raise BadTarget(f"--url must be https (Kit posts members' details to it), not {url!r}")
        if parts.path.rstrip("/").endswith(ROUTE.rstrip("/")):
            raise BadTarget(f"--url is the app's base URL; leave out {ROUTE.rstrip('/')} and the token")
        # A token with other characters would be changed by quoting or by the gateway's decoding, and
        # Kit would post to a URL whose token no longer matches.
        if not _TOKEN_CHARS.fullmatch(token):
            raise BadTarget("kit.webhook_token must be letters, digits, '-', '_', '.' or '~' to go in a URL")
        base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        return cls(base, token)

    @property
    def prefix(self) -> str:
        return self.base_url + ROUTE

    @property
    def endpoint_url(self) -> str:
        """Where a v4 endpoint posts: the route and the token, no query (the envelope says the rest)."""
        return self.prefix + self.token

    def url_for(self, hook: NeededHook) -> str:
        query = {"event": hook.event} if hook.tag is None else {"event": hook.event, "tag": hook.tag}
        return f"{self.prefix}{self.token}?{urlencode(query, quote_via=quote)}"

    def is_ours(self, url: str) -> bool:
        return url.startswith(self.prefix)

    def mask(self, url: str) -> str:
        """The URL as it may be printed: ours with the token masked, anyone else's as its host only."""
        if self.is_ours(url):
            rest = url[len(self.prefix) :]
            _token, sep, query = rest.partition("?")
            return f"{self.prefix}{MASK}{sep}{query}"
        parts = urlsplit(url)
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # a malformed port in someone else's URL is no reason to fail
            port = ""
        return f"{parts.scheme}://{parts.hostname or '?'}{port}/{MASK}"


@dataclass(frozen=True)
class Wanted:
    """A needed rule as Kit should hold it; ``rule`` is None while its tag does not exist in Kit."""

    hook: NeededHook
    url: str = field(repr=False)
    rule: WebhookEvent | None


@dataclass(frozen=True)
class HookPlan:
    present: tuple[tuple[Wanted, Webhook], ...]
    missing: tuple[Wanted, ...]
    extra: tuple[Webhook, ...]
    """Ours, and not needed (or a second copy of a needed one): sync deletes them."""
    elsewhere: tuple[tuple[Wanted, Webhook], ...]
    """A missing rule that Kit has with a URL that is not ours; reported, never changed."""
    missing_tags: tuple[str, ...]
    """Tags of needed rules that Kit does not have; sync creates them, check only says so."""

    @property
    def in_step(self) -> bool:
        return not (self.missing or self.extra)


def tag_ids_by_name(tags: Sequence[Tag]) -> dict[str, int]:
    """Kit's tag ids by name, exact names first and then case-insensitively, as Kit matches tag names."""
    ids: dict[str, int] = {}
    for tag in sorted(tags, key=lambda tag: tag.id):
        ids.setdefault(tag.name, tag.id)
        ids.setdefault(tag.name.casefold(), tag.id)
    return ids


def _tag_id(ids: Mapping[str, int], name: str) -> int | None:
    return ids.get(name, ids.get(name.casefold()))


def plan_hooks(
    needed: Sequence[NeededHook],
    target: HookTarget,
    kit_tags: Sequence[Tag],
    kit_hooks: Sequence[Webhook],
    tag_names_by_id: Mapping[str, str],
) -> HookPlan:
    """Compares the needed rules with Kit's; ``tag_names_by_id`` is the config's ``kit.tag_ids``."""
    ids = tag_ids_by_name(kit_tags)
    wanted: list[Wanted] = []
    missing_tags: list[str] = []
    for hook in needed:
        rule: WebhookEvent | None = WebhookEvent(hook.event)
        if hook.tag is not None:
            tag_id = _tag_id(ids, hook.tag)
            if tag_id is None and hook.tag not in missing_tags:
                missing_tags.append(hook.tag)
            rule = None if tag_id is None else WebhookEvent(hook.event, tag_id=tag_id)
        wanted.append(Wanted(hook, target.url_for(hook), rule))

    present: list[tuple[Wanted, Webhook]] = []
    missing: list[Wanted] = []
    claimed: set[int] = set()
    ours = sorted((hook for hook in kit_hooks if target.is_ours(hook.target_url)), key=lambda hook: hook.id)
    for want in wanted:
        match = next(
            (hook for hook in ours if hook.id not in claimed and _same(want, hook, target, tag_names_by_id)),
            None,
        )
        if match is None:
            missing.append(want)
        else:
            claimed.add(match.id)
            present.append((want, match))
    extra = tuple(hook for hook in ours if hook.id not in claimed)
    elsewhere = tuple(
        (want, hook)
        for want in missing
        for hook in sorted(kit_hooks, key=lambda hook: hook.id)
        if want.rule is not None and not target.is_ours(hook.target_url) and _same_rule(want.rule, hook.event)
    )
    return HookPlan(tuple(present), tuple(missing), extra, elsewhere, tuple(missing_tags))


def _same_rule(rule: WebhookEvent, event: WebhookEvent) -> bool:
    return (rule.name, rule.tag_id) == (event.name, event.tag_id)


def _same(want: Wanted, hook: Webhook, target: HookTarget, tag_names_by_id: Mapping[str, str]) -> bool:
    if want.rule is None or not _same_rule(want.rule, hook.event):
        return False
    rest = hook.target_url[len(target.prefix) :]
    token, _, query = rest.partition("?")
    if token != target.token:
        return False
    params = {key: values[-1].strip() for key, values in parse_qs(query, keep_blank_values=True).items()}
    event = params.get("event", "").lower().removeprefix("subscriber.")
    tag = params.get("tag")
    if tag is not None and tag not in tag_names_by_id.values():
        tag = tag_names_by_id.get(tag, tag)
    return event == want.hook.event and tag == want.hook.tag


# --- the shell: read Kit, plan, and change it ---------------------------------------------------


class KitHooksApi(Protocol):
    """The calls of ``KitClient`` that reading and syncing hooks make."""

    def list_tags(self) -> tuple[Tag, ...]: ...

    def create_tag(self, name: str) -> Tag: ...

    def list_webhooks(self) -> tuple[Webhook, ...]: ...

    def create_webhook(self, target_url: str, event: WebhookEvent) -> Webhook: ...

    def delete_webhook(self, webhook_id: int) -> None: ...

    def list_webhook_endpoints(self) -> tuple[WebhookEndpoint, ...]: ...

    def create_webhook_endpoint(
        self, url: str, events: Sequence[str], *, name: str | None = None, description: str | None = None
    ) -> CreatedWebhookEndpoint: ...

    def update_webhook_endpoint(
        self,
        endpoint_id: int,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        status: str | None = None,
    ) -> WebhookEndpoint: ...

    def delete_webhook_endpoint(self, endpoint_id: int) -> None: ...


Say = Callable[[str], None]
"""Where sync reports each change as it makes it, so a failure half-way still shows what was done."""


def read_plan(
    kit: KitHooksApi, needed: Sequence[NeededHook], target: HookTarget, tag_names_by_id: Mapping[str, str]
) -> HookPlan:
    return plan_hooks(needed, target, kit.list_tags(), kit.list_webhooks(), tag_names_by_id)


def sync_hooks(
    kit: KitHooksApi,
    needed: Sequence[NeededHook],
    target: HookTarget,
    tag_names_by_id: Mapping[str, str],
    say: Say,
) -> tuple[HookPlan, int, int]:
    """Creates missing tags and rules, then deletes our extra rules; returns the plan and the counts.

    The new rules are created before any old one is deleted, so Kit never goes without a rule the
    config needs while a replaced one is on its way out (a delivery to both is deduplicated).
    """
    plan = read_plan(kit, needed, target, tag_names_by_id)
    if plan.missing_tags:
        for name in plan.missing_tags:
            tag = kit.create_tag(name)
            say(f"created tag {name!r} (Kit id {tag.id})")
        plan = read_plan(kit, needed, target, tag_names_by_id)
    created = deleted = 0
    for want in plan.missing:
        if want.rule is None:  # the tag was just created; Kit not listing it is Kit's inconsistency
            raise LookupError(f"Kit does not list the tag {want.hook.tag!r} it just created; run sync again")
        hook = kit.create_webhook(want.url, want.rule)
        created += 1
        say(f"created  {want.hook.label}  hook {hook.id}")
    for hook in plan.extra:
        kit.delete_webhook(hook.id)
        deleted += 1
        say(f"deleted  {describe(hook)}  hook {hook.id} -> {target.mask(hook.target_url)} (ours, not needed)")
    return plan, created, deleted


def describe(hook: Webhook) -> str:
    """A Kit rule as the operator reads it: ``tag_add tag id 5``."""
    parameters = " ".join(f"{key.replace('_', ' ')} {value}" for key, value in hook.event.parameters.items())
    return f"{hook.event.name} {parameters}".strip()


def overlapping_endpoints(
    kit: KitHooksApi, needed: Sequence[NeededHook], target: HookTarget
) -> tuple[WebhookEndpoint, ...]:
    """Our v4 endpoints that deliver what the needed legacy rules deliver: Kit would send it twice."""
    types = {V4_EVENT_TYPES[hook.event] for hook in needed}
    return tuple(
        endpoint
        for endpoint in sorted(kit.list_webhook_endpoints(), key=lambda endpoint: endpoint.id)
        if target.is_ours(endpoint.url) and endpoint.event_set & types
    )


# --- the v4 endpoint -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointChange:
    """What an update changes on our endpoint; a part that is None (or False) is right already."""

    url: str | None = field(default=None, repr=False)
    events: tuple[str, ...] | None = None
    enable: bool = False


@dataclass(frozen=True)
class EndpointPlan:
    url: str = field(repr=False)
    """Where the endpoint should post: ``HookTarget.endpoint_url``."""
    needed: tuple[NeededEvent, ...]
    endpoint: WebhookEndpoint | None
    """Ours and kept; None when Kit has none of ours or the config needs no endpoint."""
    change: EndpointChange | None
    """How the kept endpoint differs from what is needed; None when it is in step."""
    extra: tuple[WebhookEndpoint, ...]
    """Ours and not kept (a second copy, or none is needed): sync deletes them."""
    legacy: tuple[Webhook, ...]
    """Our legacy rules, which the endpoint replaces: sync deletes them."""
    elsewhere: tuple[WebhookEndpoint, ...]
    """While ours is missing: endpoints that are not ours but take a needed type; never changed."""

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(need.event for need in self.needed)

    @property
    def missing(self) -> bool:
        return bool(self.needed) and self.endpoint is None

    @property
    def in_step(self) -> bool:
        return not (self.missing or self.change or self.extra or self.legacy)


def plan_endpoint(
    needed: Sequence[NeededEvent],
    target: HookTarget,
    kit_endpoints: Sequence[WebhookEndpoint],
    kit_rules: Sequence[Webhook],
) -> EndpointPlan:
    """Compares the endpoint the config needs with Kit's endpoints, and lists our legacy rules."""
    url = target.endpoint_url
    wanted = frozenset(need.event for need in needed)
    ours = sorted(
        (endpoint for endpoint in kit_endpoints if target.is_ours(endpoint.url)),
        # The one to keep is the closest: right URL first, then active, then the right events, then oldest.
        key=lambda e: (e.url != url, e.status != "active", e.event_set != wanted, e.id),
    )
    kept = ours[0] if ours and needed else None
    change = None
    if kept is not None:
        change = EndpointChange(
            url=None if kept.url == url else url,
            events=None if kept.event_set == wanted else tuple(need.event for need in needed),
            enable=kept.status != "active",
        )
        if change == EndpointChange():
            change = None
    extra = tuple(sorted((e for e in ours if e is not kept), key=lambda e: e.id))
    legacy = tuple(sorted((r for r in kit_rules if target.is_ours(r.target_url)), key=lambda r: r.id))
    elsewhere: tuple[WebhookEndpoint, ...] = ()
    if needed and kept is None:
        elsewhere = tuple(
            e
            for e in sorted(kit_endpoints, key=lambda e: e.id)
            if not target.is_ours(e.url) and e.event_set & wanted
        )
    return EndpointPlan(url, tuple(needed), kept, change, extra, legacy, elsewhere)


class SecretKeeper(Protocol):
    """Where a new endpoint's signing secret goes; Kit shows it in the create answer and never again."""

    def reserve(self) -> None:
        """Called before the endpoint is created: fail here, while nothing has changed, if it cannot."""

    def keep(self, secret: str) -> str:
        """Stores the secret; returns where it went, for the operator (never the secret itself)."""

    def abandon(self) -> None:
        """The endpoint was not created after all: undo ``reserve``."""


class NowhereForTheSecret(Exception):
    """A new endpoint is needed, and there is nowhere to keep the signing secret Kit shows only once."""


@dataclass(frozen=True)
class EndpointSync:
    plan: EndpointPlan
    created: WebhookEndpoint | None = None
    updated: WebhookEndpoint | None = None
    deleted: int = 0


def read_endpoint_plan(kit: KitHooksApi, needed: Sequence[NeededEvent], target: HookTarget) -> EndpointPlan:
    return plan_endpoint(needed, target, kit.list_webhook_endpoints(), kit.list_webhooks())


def sync_endpoint(
    kit: KitHooksApi,
    needed: Sequence[NeededEvent],
    target: HookTarget,
    keeper: SecretKeeper | None,
    say: Say,
) -> EndpointSync:
    """Creates or updates our endpoint, then deletes our extra endpoints and our legacy rules.

    The endpoint is in step before anything is deleted, so Kit never goes without a way to reach the
    app. A new endpoint's deliveries are refused (401) until its secret is where ``kit.webhook_secret``
    points; Kit retries them (for about 41 hours), so none is lost meanwhile.
    """
    plan = read_endpoint_plan(kit, needed, target)
    created = updated = None
    if plan.missing:
        if keeper is None:
            raise NowhereForTheSecret(
                "a new v4 endpoint is needed, and Kit shows its signing secret only once"
            )
        keeper.reserve()
        try:
            new = kit.create_webhook_endpoint(
                plan.url, plan.events, name=ENDPOINT_NAME, description=ENDPOINT_DESCRIPTION
            )
        except BaseException as problem:
            keeper.abandon()
            if isinstance(problem, KitError) and problem.retryable:
                say(
                    "note: the create call failed in a way Kit may still have applied; if check then finds "
                    "the endpoint, its secret never reached us: delete it in Kit and run sync again"
                )
            raise
        where = keeper.keep(new.secret)
        created = new.endpoint
        say(f"created  v4 endpoint {created.id} -> {target.mask(created.url)}  ({', '.join(created.events)})")
        say(f"         its signing secret {where}")
    elif plan.endpoint is not None and plan.change is not None:
        change = plan.change
        updated = kit.update_webhook_endpoint(
            plan.endpoint.id, url=change.url, events=change.events, status="active" if change.enable else None
        )
        say(f"updated  v4 endpoint {updated.id}  {describe_change(plan.endpoint, change, target)}")
    deleted = 0
    for endpoint in plan.extra:
        kit.delete_webhook_endpoint(endpoint.id)
        deleted += 1
        say(f"deleted  v4 endpoint {endpoint.id} -> {target.mask(endpoint.url)} (ours, {why_extra(plan)})")
    for rule in plan.legacy:
        kit.delete_webhook(rule.id)
        deleted += 1
        say(
            f"deleted  legacy rule {describe(rule)}  hook {rule.id} -> {target.mask(rule.target_url)} "
            "(ours, replaced by the v4 endpoint)"
        )
    return EndpointSync(plan, created, updated, deleted)


def why_extra(plan: EndpointPlan) -> str:
    return "a second endpoint" if plan.needed else "the config needs no endpoint"


def describe_change(endpoint: WebhookEndpoint, change: EndpointChange, target: HookTarget) -> str:
    """How our endpoint differs from the needed one, as the operator reads it."""
    parts = []
    if change.url is not None:
        parts.append(f"url {target.mask(endpoint.url)} -> {target.mask(change.url)} (another token)")
    if change.events is not None:
        lacking = [event for event in change.events if event not in endpoint.event_set]
        unneeded = [event for event in endpoint.events if event not in change.events]
        if lacking:
            parts.append(f"events: lacks {', '.join(lacking)}")
        if unneeded:
            parts.append(f"events: has unneeded {', '.join(unneeded)}")
    if change.enable:
        parts.append(f"status {endpoint.status} -> active")
    return "; ".join(parts)
