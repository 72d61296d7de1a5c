"""``memberflow kit hooks``: the Kit legacy webhook rules the config needs, compared with Kit's and synced.

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

The webhook token is a secret: ``HookTarget.mask`` is how any URL is shown, with the token replaced,
and a URL that is not ours shows only its host, since its path may hold someone else's secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from chalicelib.adapters.kit.resources import Tag, Webhook, WebhookEvent
from chalicelib.config.kit_hooks import NeededHook

ROUTE: Final = "/webhooks/kit/"
MASK: Final = "***"
_TOKEN_CHARS: Final = re.compile(r"[A-Za-z0-9._~-]+")
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


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
