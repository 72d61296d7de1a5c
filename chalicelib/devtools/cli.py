"""The operator's command line: ``python -m chalicelib.cli <group> <command> ...`` (or ``./memberflow``).

Commands are grouped (``config check``, ``config schema``; ``simulate`` stands alone; ``kit hooks
check`` and ``kit hooks sync``, for legacy rules or a v4 endpoint; ``kit sequences check``, for the
sequences ``subscribe_sequence`` steps name; ``kit resync``, which asks the deployed app to queue a
Kit sync for every contact; later groups such as replaying
events or inspecting contacts plug in the same way): each group is a function in ``COMMAND_GROUPS``
that adds its sub-parser and sets a ``handler`` for each command. A handler takes the parsed
arguments and the two output streams and returns the exit code, so tests call ``main([...])`` and
read what was printed. Results go to stdout, diagnostics (warnings, errors) to
stderr; exit code 1 means the command ran and found problems, 2 means it was called wrongly (or, for the
commands that call Kit, without the config or credentials they need), 3 that Kit failed or refused a
call.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, TextIO, TypeAlias

from chalicelib.adapters.kit.client import (
    DEFAULT_BASE_URL,
    MASK,
    KitClient,
    KitError,
    KitPermanent,
    KitRetryable,
)
from chalicelib.config.automations import parse_duration
from chalicelib.config.kit_hooks import (
    NeededEvent,
    NeededHook,
    endpoint_events,
    needed_hooks,
    needs_v4_endpoint,
)
from chalicelib.config.loader import ConfigError, LoadedConfig, load_config
from chalicelib.config.model import MemberflowConfig
from chalicelib.config.schema import SCHEMA_PATH, render_schema, write_schema
from chalicelib.config.secrets import SecretResolver, SecretUnavailable, parse_secret_ref
from chalicelib.config.validate import SequenceReference, format_path, sequence_references
from chalicelib.devtools.kit_hooks import (
    HookTarget,
    NowhereForTheSecret,
    describe,
    describe_change,
    overlapping_endpoints,
    read_endpoint_plan,
    read_plan,
    sync_endpoint,
    sync_hooks,
    why_extra,
)
from chalicelib.devtools.kit_resync import ResyncFailed
from chalicelib.devtools.kit_resync import resync as run_resync
from chalicelib.devtools.kit_sequences import SequenceLookup, check_sequences
from chalicelib.devtools.simulator import Simulator, commands_for, parse_event, unknown_tag_warnings
from chalicelib.domain.errors import BadRequest, MemberflowError, NotFound
from chalicelib.settings import Settings


class Handler(Protocol):
    def __call__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> int: ...


if TYPE_CHECKING:
    from chalicelib.adapters.http import Transport

    CommandGroups: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


# --- config ------------------------------------------------------------------------------------


def _config_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        loaded = load_config(args.file)
    except ConfigError as exc:
        for problem in exc.errors:
            print(f"error: {problem}", file=err)
        for problem in exc.warnings:
            print(f"warning: {problem}", file=err)
        print(f"{args.file}: {len(exc.errors)} error(s)", file=err)
        return 1
    for problem in loaded.warnings:
        print(f"warning: {problem}", file=err)
    if args.strict and loaded.warnings:
        print(f"{args.file}: {len(loaded.warnings)} warning(s), and --strict was given", file=err)
        return 1
    print(f"ok {loaded.version}", file=out)
    return 0


def _config_schema(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.output is None:
        out.write(render_schema())
        return 0
    write_schema(args.output)
    print(f"wrote {args.output}", file=err)
    return 0


def add_config_commands(groups: CommandGroups) -> None:
    config = groups.add_parser("config", help="check the config file, print its JSON Schema")
    commands = config.add_subparsers(title="commands", metavar="COMMAND")
    config.set_defaults(handler=_usage(config))

    check = commands.add_parser(
        "check", help="validate a config file: prints 'ok <version>', or every error (exit 1)"
    )
    check.add_argument("file", metavar="FILE", help="the YAML config file")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.set_defaults(handler=_config_check)

    schema = commands.add_parser("schema", help="print or write the config file's JSON Schema")
    schema.add_argument(
        "--output", "-o", metavar="PATH", help=f"write to PATH instead of stdout (e.g. {SCHEMA_PATH})"
    )
    schema.set_defaults(handler=_config_schema)


# --- simulate ----------------------------------------------------------------------------------

DEFAULT_HORIZON = "400d"


class _Usage(Exception):
    """The simulate command was called wrongly (exit 2); the message says how."""


def _simulate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    loaded = _load_for_command(args.config, err)
    if loaded is None:
        return 1
    config = loaded.model
    try:
        contact = _json_object(args.contact, "--contact")
        start = _start_time(args.start)
        horizon = start + dt.timedelta(seconds=_duration(args.until, "--until"))
        events = [parse_event(text) for text in args.event]
        for event in events:
            commands_for(event, config)  # every event is checked before anything runs
        sim = Simulator.for_contact(config, contact, start)
    except _Usage as problem:
        print(f"error: {problem}", file=err)
        return 2
    except BadRequest as problem:
        print(f"error: {problem.message}", file=err)
        return 2
    for unknown_tag in unknown_tag_warnings(config, contact, events):
        print(f"warning: {unknown_tag}", file=err)
    try:
        for event in events:
            sim.event(event)
        sim.run_until(horizon)
    except (BadRequest, NotFound) as problem:
        print(f"error: {problem.message}", file=err)
        return 2
    except MemberflowError as problem:
        # The simulation itself went wrong (a refused operation, a cascade): show how far it got.
        print(sim.report(), file=out)
        print(f"error: {problem.code}: {problem.message}", file=err)
        return 1
    print(sim.report(), file=out)
    left = sim.pending()
    if left:
        print(
            f"note: {len(left)} wake-up(s) still pending after {horizon.isoformat()} "
            f"(--until {args.until}); the next is due {left[0].due_at.isoformat()}",
            file=err,
        )
    return 0


def _load_for_command(path: str, err: TextIO) -> LoadedConfig | None:
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        for problem in exc.errors:
            print(f"error: {problem}", file=err)
        print(f"{path}: {len(exc.errors)} error(s)", file=err)
        return None
    for problem in loaded.warnings:
        print(f"warning: {problem}", file=err)
    return loaded


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Usage(f"{option} is not valid JSON ({exc.msg} at column {exc.colno}): {text}") from None
    if not isinstance(value, dict):
        raise _Usage(f'{option} must be a JSON object like {{"email": "jane@example.com"}}, not {text}')
    return value


def _start_time(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        start = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _Usage(f"--start {text!r} is not a date and time like 2026-01-05T09:00:00Z") from None
    return start if start.tzinfo else start.replace(tzinfo=dt.UTC)


def _duration(text: str, option: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise _Usage(f"{option} {exc}") from None


def add_simulate_command(groups: CommandGroups) -> None:
    simulate = groups.add_parser(
        "simulate",
        help="run a contact through the config's automations on a virtual clock (no AWS)",
        description=(
            "Run one contact through the automations of a config file on a virtual clock: apply "
            "the events in order at --start, then fire every wake-up (delays, wait_until) up to "
            "--until later, and print the timeline and each run's history. A tag of the contact or "
            "an event that the config never mentions is warned about on stderr, with a guess."
        ),
    )
    simulate.add_argument("--config", required=True, metavar="FILE", help="the YAML config file")
    simulate.add_argument(
        "--contact",
        required=True,
        metavar="JSON",
        help='the contact as JSON: {"email": "jane+test@example.com", "tags": ["VIP"], "fields": {...}}',
    )
    simulate.add_argument(
        "--event",
        action="append",
        default=[],
        metavar="EVENT",
        help=(
            "an event, in order (repeatable): 'tag_added: X', 'tag_removed: X', 'operation: ID', "
            "'set_field: {field: F, value: V}', 'thrivecart: {event: order.success, product: product-12}'"
        ),
    )
    simulate.add_argument(
        "--until",
        default=DEFAULT_HORIZON,
        metavar="DURATION",
        help=f"how long after --start to keep firing wake-ups, e.g. 90d or 6w (default {DEFAULT_HORIZON})",
    )
    simulate.add_argument(
        "--start",
        metavar="TIME",
        help="when the events happen, e.g. 2026-01-05T09:00:00Z (default: now; no zone means UTC)",
    )
    simulate.set_defaults(handler=_simulate)


# --- kit hooks ---------------------------------------------------------------------------------

KIT_API_KEY_REF = "env:KIT_API_KEY"
"""Where the Kit API key is read from when the config names none under ``kit.api_key``."""
KIT_FAILED = 3
"""Exit code of a ``kit`` command that Kit refused or did not answer (other than for the key)."""
LEGACY, V4 = "legacy", "v4"
HOOK_MODES = (LEGACY, V4)
"""``--mode``: legacy rules (one per event and tag) or one v4 webhook endpoint."""


class _Stop(Exception):
    """A ``kit hooks`` command cannot go on; ``code`` is its exit code and the message says why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Masking:
    """Prints lines with every secret the command holds replaced, whatever brought it into the text."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._secrets: list[str] = []

    def hide(self, secret: str) -> None:
        self._secrets.append(secret)

    def __call__(self, line: str) -> None:
        for secret in self._secrets:
            line = line.replace(secret, MASK)
        print(line, file=self.stream)


@dataclass(frozen=True)
class _HooksSession:
    kit: KitClient
    mode: str
    needed: tuple[NeededHook, ...]
    events: tuple[NeededEvent, ...]
    target: HookTarget
    tag_names_by_id: dict[str, str]
    secret_ref: str
    """``kit.webhook_secret`` as it may be printed: the reference, never a literal secret."""


def _hooks_mode(args: argparse.Namespace, model: MemberflowConfig) -> str:
    """``--mode``, else v4 for a config that refuses unsigned bodies and legacy (as always) otherwise."""
    only_signed = needs_v4_endpoint(model)
    mode: str = args.mode or (V4 if only_signed else LEGACY)
    if mode == LEGACY and only_signed:
        raise _Stop(
            2,
            "this config accepts only signed v4 webhook endpoints (kit.legacy_hooks: false), so the app "
            "would refuse what legacy rules post; use --mode v4 (the default for such a config)",
        )
    if mode == V4 and model.kit.webhook_secret is None:
        raise _Stop(
            2,
            "a v4 endpoint signs its deliveries and the app checks them with kit.webhook_secret, which "
            "this config does not set; add it first (e.g. webhook_secret: env:KIT_WEBHOOK_SECRET)",
        )
    return mode


def _shown_ref(ref: str | None) -> str:
    if ref is None:
        return "unset"
    try:
        literal = parse_secret_ref(ref).kind == "literal"
    except ValueError:
        literal = True  # the loader refuses these; never print what could be a secret
    return "a literal in the config file" if literal else ref


def _hooks_session(args: argparse.Namespace, out: _Masking, err: _Masking) -> _HooksSession:
    """The config, this app's hook URL and a Kit client, or ``_Stop(2)`` saying what is missing."""
    settings = Settings.from_environ()
    path = args.config or str(settings.config_path)
    loaded = _load_for_command(path, err.stream)
    if loaded is None:
        raise _Stop(2, f"{path} has errors; fix them first (./memberflow config check {path})")
    kit = loaded.model.kit
    mode = _hooks_mode(args, loaded.model)
    url = args.url or settings.public_base_url
    if not url:
        raise _Stop(2, "say where the app is: --url https://<your api> (or set PUBLIC_BASE_URL)")
    if kit.webhook_token is None:
        raise _Stop(2, "the config has no kit.webhook_token, so Kit has no URL to post to; set one first")
    secrets = SecretResolver(environ=settings.environ)
    try:
        token = secrets.resolve(kit.webhook_token)
    except SecretUnavailable as missing:
        raise _Stop(2, f"kit.webhook_token: {missing}") from None
    try:
        api_key = secrets.resolve(kit.api_key or KIT_API_KEY_REF)
    except SecretUnavailable as missing:
        raise _Stop(2, f"{missing}; the Kit API key comes from kit.api_key, else KIT_API_KEY") from None
    for secret in (token, api_key):
        out.hide(secret)
        err.hide(secret)
    try:
        target = HookTarget.parse(url, token)
        client = KitClient(settings.kit_api_base_url or DEFAULT_BASE_URL, api_key)
    except ValueError as problem:
        raise _Stop(2, str(problem)) from None
    return _HooksSession(
        client,
        mode,
        needed_hooks(loaded.model),
        endpoint_events(loaded.model),
        target,
        dict(kit.tag_ids),
        _shown_ref(kit.webhook_secret),
    )


def _kit_failure(problem: KitError, *, changes: bool = True) -> _Stop:
    """``changes``: the command changes Kit, so the operator is told that what it did is listed."""
    if isinstance(problem, KitPermanent) and problem.status in (401, 403):
        return _Stop(2, f"Kit refused the API key ({problem.status} {problem.reason}); check KIT_API_KEY")
    if isinstance(problem, KitRetryable) and problem.rate_limited:
        hint = "the API key is over Kit's limit of 120 requests a minute; run the command again in a minute"
    elif problem.retryable:
        hint = "Kit is failing or out of reach; run the command again later"
    else:
        hint = "Kit refused the call; what it said is above"
    done = " (what was done so far is listed above)" if changes else ""
    return _Stop(KIT_FAILED, f"{problem.message}\n{hint}{done}")


HooksCommand = Callable[[_HooksSession, argparse.Namespace, _Masking, _Masking], int]


def _run_hooks(command: HooksCommand, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    say, warn = _Masking(out), _Masking(err)
    try:
        session = _hooks_session(args, say, warn)
        try:
            return command(session, args, say, warn)
        except KitError as problem:
            raise _kit_failure(problem) from None
        except LookupError as problem:
            raise _Stop(KIT_FAILED, str(problem)) from None
    except _Stop as stop:
        warn(f"error: {stop}")
        return stop.code


def _hooks_check(session: _HooksSession, args: argparse.Namespace, say: _Masking, warn: _Masking) -> int:
    if session.mode == V4:
        return _endpoint_check(session, say)
    target = session.target
    say(f"rules point at {target.prefix}{MASK}?event=...")
    plan = read_plan(session.kit, session.needed, target, session.tag_names_by_id)
    missing_tags = set(plan.missing_tags)
    for want, hook in plan.present:
        say(f"ok       {want.hook.label}  hook {hook.id}")
    for want in plan.missing:
        why = "the tag is not in Kit yet" if want.hook.tag in missing_tags else ", ".join(want.hook.owners)
        say(f"missing  {want.hook.label}  ({why})")
    for want, hook in plan.elsewhere:
        say(
            f"elsewhere  {want.hook.label}  hook {hook.id} -> {target.mask(hook.target_url)} "
            "(not ours: sync leaves it alone)"
        )
    for hook in plan.extra:
        say(f"extra    {describe(hook)}  hook {hook.id} -> {target.mask(hook.target_url)} (ours, not needed)")
    say(
        f"check: {len(session.needed)} needed, {len(plan.present)} in step, {len(plan.missing)} missing, "
        f"{len(plan.extra)} extra, {len(plan.elsewhere)} pointing elsewhere"
    )
    _note_overlap(session, warn)
    return 0 if plan.in_step else 1


def _hooks_sync(session: _HooksSession, args: argparse.Namespace, say: _Masking, warn: _Masking) -> int:
    if session.mode == V4:
        return _endpoint_sync(session, args, say, warn)
    target = session.target
    say(f"rules point at {target.prefix}{MASK}?event=...")
    plan, created, deleted = sync_hooks(session.kit, session.needed, target, session.tag_names_by_id, say)
    for want, hook in plan.elsewhere:
        say(
            f"left alone  hook {hook.id} -> {target.mask(hook.target_url)}: it has the rule of "
            f"{want.hook.label} but is not ours"
        )
    in_step = len(plan.present)
    if created or deleted:
        say(f"sync: {created} created, {deleted} deleted, {in_step} already in step")
    else:
        say(f"sync: nothing to do, {in_step} in step")
    _note_overlap(session, warn)
    return 0


def _note_overlap(session: _HooksSession, warn: _Masking) -> None:
    """Warns when a v4 endpoint of ours takes what the legacy rules deliver: Kit would send it twice."""
    if not session.needed:
        return
    try:
        overlapping = overlapping_endpoints(session.kit, session.needed, session.target)
    except KitError as problem:
        # Only a note: the rules are checked or synced already, whatever the endpoints say.
        warn(f"note: could not list Kit's v4 webhook endpoints to look for overlaps ({problem.message})")
        return
    for endpoint in overlapping:
        warn(
            f"warning: v4 endpoint {endpoint.id} -> {session.target.mask(endpoint.url)} also posts "
            f"{', '.join(sorted(endpoint.event_set & {need.event for need in session.events}))} to this "
            "app, so Kit sends those events twice (a trigger tag could run its operation twice); "
            "keep one way: --mode v4 replaces the rules with the endpoint"
        )


def _endpoint_check(session: _HooksSession, say: _Masking) -> int:
    target = session.target
    say(f"endpoint points at {target.mask(target.endpoint_url)}")
    plan = read_endpoint_plan(session.kit, session.events, target)
    endpoint, change = plan.endpoint, plan.change
    if endpoint is not None and change is None:
        say(f"ok       v4 endpoint {endpoint.id}  {', '.join(endpoint.events)}")
    if plan.missing:
        owners = sorted({owner for need in plan.needed for owner in need.owners})
        say(f"missing  v4 endpoint  {', '.join(plan.events)}  ({', '.join(owners)})")
    if endpoint is not None and change is not None:
        if change.url is not None:
            say(f"url      v4 endpoint {endpoint.id} -> {target.mask(endpoint.url)} (another token)")
        if change.events is not None:
            only_events = replace(change, url=None, enable=False)
            say(f"events   v4 endpoint {endpoint.id}  {describe_change(endpoint, only_events, target)}")
        if change.enable:
            say(f"disabled v4 endpoint {endpoint.id}  (status {endpoint.status}: Kit delivers nothing to it)")
    for other in plan.elsewhere:
        say(
            f"elsewhere  v4 endpoint {other.id} -> {target.mask(other.url)}  "
            f"{', '.join(sorted(other.event_set & set(plan.events)))} (not ours: sync leaves it alone)"
        )
    for extra in plan.extra:
        say(f"extra    v4 endpoint {extra.id} -> {target.mask(extra.url)} (ours, {why_extra(plan)})")
    for rule in plan.legacy:
        say(
            f"extra    legacy rule {describe(rule)}  hook {rule.id} -> {target.mask(rule.target_url)} "
            "(ours, replaced by the v4 endpoint)"
        )
    needed = 1 if plan.needed else 0
    say(
        f"check: {needed} endpoint needed ({len(plan.events)} event types), "
        f"{1 if endpoint is not None and change is None else 0} in step, {1 if plan.missing else 0} missing, "
        f"{0 if change is None else 1} out of step, {len(plan.extra) + len(plan.legacy)} extra, "
        f"{len(plan.elsewhere)} pointing elsewhere"
    )
    return 0 if plan.in_step else 1


class _SecretFile:
    """Where sync writes a new endpoint's signing secret: a new file only its owner can read."""

    def __init__(self, path: str, reference: str, streams: Sequence[_Masking]) -> None:
        self.path = path
        self.reference = reference
        self.streams = streams
        self._fd: int | None = None

    def reserve(self) -> None:
        try:
            # O_EXCL: an existing file (an earlier secret, or someone else's file) is never overwritten.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise _Stop(
                2, f"--secret-file {self.path} exists already; give a new path (nothing was changed in Kit)"
            ) from None
        except OSError as exc:
            raise _Stop(
                2, f"--secret-file {self.path}: {exc.strerror or exc} (nothing was changed in Kit)"
            ) from None

    def keep(self, secret: str) -> str:
        for stream in self.streams:
            stream.hide(secret)
        fd, self._fd = self._fd, None
        if fd is None:
            raise RuntimeError("keep() before reserve()")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(secret)  # no newline: the file's bytes are the secret, e.g. for file:// uploads
        except OSError as exc:
            raise _Stop(
                2,
                f"the endpoint was created, but writing its secret to {self.path} failed "
                f"({exc.strerror or exc}); rotate the endpoint's secret in Kit to get a new one",
            ) from None
        return (
            f"is in {self.path} (Kit shows it only once): store it where kit.webhook_secret points "
            f"({self.reference}), then delete the file; until then the app refuses the endpoint's "
            "deliveries and Kit retries them"
        )

    def abandon(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def _endpoint_sync(session: _HooksSession, args: argparse.Namespace, say: _Masking, warn: _Masking) -> int:
    target = session.target
    say(f"endpoint points at {target.mask(target.endpoint_url)}")
    keeper = (
        None if args.secret_file is None else _SecretFile(args.secret_file, session.secret_ref, (say, warn))
    )
    try:
        done = sync_endpoint(session.kit, session.events, target, keeper, say)
    except NowhereForTheSecret as problem:
        raise _Stop(
            2,
            f"{problem}: give --secret-file PATH and sync writes it there, readable by you only, for you to "
            f"store where kit.webhook_secret points ({session.secret_ref}); nothing was changed in Kit",
        ) from None
    plan = done.plan
    for other in plan.elsewhere:
        say(f"left alone  v4 endpoint {other.id} -> {target.mask(other.url)}: not ours")
    created, updated = int(done.created is not None), int(done.updated is not None)
    in_step = 1 if plan.endpoint is not None and plan.change is None else 0
    if created or updated or done.deleted:
        say(f"sync: {created} created, {updated} updated, {done.deleted} deleted, {in_step} already in step")
    else:
        say(f"sync: nothing to do, {in_step} in step")
    return 0


# --- kit sequences -----------------------------------------------------------------------------


def _kit_client(loaded: LoadedConfig, settings: Settings, say: _Masking, warn: _Masking) -> KitClient:
    """A client with the key from ``kit.api_key``, else ``KIT_API_KEY``, hidden from both streams."""
    secrets = SecretResolver(environ=settings.environ)
    try:
        api_key = secrets.resolve(loaded.model.kit.api_key or KIT_API_KEY_REF)
    except SecretUnavailable as missing:
        raise _Stop(2, f"{missing}; the Kit API key comes from kit.api_key, else KIT_API_KEY") from None
    say.hide(api_key)
    warn.hide(api_key)
    try:
        return KitClient(settings.kit_api_base_url or DEFAULT_BASE_URL, api_key)
    except ValueError as problem:
        raise _Stop(2, str(problem)) from None


def _sequences_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    say, warn = _Masking(out), _Masking(err)
    try:
        settings = Settings.from_environ()
        path = args.config or str(settings.config_path)
        loaded = _load_for_command(path, err)
        if loaded is None:
            raise _Stop(2, f"{path} has errors; fix them first (./memberflow config check {path})")
        references = sequence_references(loaded.model)
        if not references:
            say("check: no subscribe_sequence steps in the config; nothing to look up in Kit")
            return 0
        kit = _kit_client(loaded, settings, say, warn)
        try:
            listed = kit.list_sequences()
        except KitError as problem:
            raise _kit_failure(problem, changes=False) from None
    except _Stop as stop:
        warn(f"error: {stop}")
        return stop.code
    check = check_sequences(references, listed)
    for lookup in check.lookups:
        say(_lookup_line(lookup))
    if check.unknown:
        shown = ", ".join(f"{sequence.name!r} ({sequence.id})" for sequence in check.kit_sequences)
        say(f"Kit's sequences: {shown}" if shown else "Kit has no sequences: create them in Kit's app")
    steps, unknown = len(check.lookups), len(check.unknown)
    say(f"check: {steps} subscribe_sequence steps, {steps - unknown} found in Kit, {unknown} unknown")
    if unknown < steps:
        warn(
            "note: Kit's list does not say whether a sequence is active; Kit refuses to add contacts to "
            "an inactive one, which parks the item, so make sure in Kit that the sequences found are active"
        )
    return 0 if check.ok else 1


def _lookup_line(lookup: SequenceLookup) -> str:
    reference = lookup.reference
    where = format_path(reference.path) + _status_note(reference)
    if lookup.found is not None:
        return f"ok       {where}  {reference.sequence!r} -> sequence {lookup.found.id} {lookup.found.name!r}"
    guess = f"; did you mean {lookup.guess.name!r}?" if lookup.guess is not None else ""
    return f"unknown  {where}  {reference.sequence!r}  (not in Kit: delivery would park it{guess})"


def _status_note(reference: SequenceReference) -> str:
    return "" if reference.status == "live" else f" ({reference.status})"


# --- kit resync --------------------------------------------------------------------------------


def kit_resync(
    args: argparse.Namespace, out: TextIO, err: TextIO, *, transport: Transport | None = None
) -> int:
    """``kit resync``: pages of ``POST /admin/kit/resync`` until the app says every contact is queued.
    ``transport`` is the app's HTTP (tests pass one that calls the app in-process)."""
    say, warn = _Masking(out), _Masking(err)
    settings = Settings.from_environ()
    base = args.url or settings.public_base_url
    if not base:
        warn("error: no app URL: give --url or set PUBLIC_BASE_URL")
        return 2
    try:
        token = SecretResolver(environ=settings.environ).resolve_optional(settings.admin_token_ref)
    except SecretUnavailable as missing:
        warn(f"error: the admin token cannot be read: {missing}")
        return 2
    if not token:
        warn(
            "error: ADMIN_TOKEN is not set: the admin API needs it (a token, or a reference such as ssm:...)"
        )
        return 2
    say.hide(token)
    warn.hide(token)
    if transport is None:
        from chalicelib.adapters.http import Urllib3Transport

        transport = Urllib3Transport(timeout=RESYNC_TIMEOUT_SECONDS)
    who = args.email or "every contact"
    try:
        done = run_resync(
            transport,
            base,
            token,
            email=args.email,
            limit=args.limit,
            cursor=args.cursor,
            progress=lambda page, queued: say(f"page {page}: {queued} queued"),
        )
    except ResyncFailed as failed:
        warn(f"error: {failed}")
        if failed.retryable:
            again = f" --cursor {failed.cursor}" if failed.cursor else ""
            warn(f"nothing of that page is lost: run the command again{again} to go on")
            return KIT_FAILED
        return 2
    say(
        f"resync: {done.queued} Kit item(s) queued for {who} ({done.pages} page(s)); the outbox delivers them"
    )
    return 0


RESYNC_TIMEOUT_SECONDS = 35.0
"""Longer than API Gateway's 29 seconds: a page is answered or refused by the app, not cut off here."""


def add_kit_commands(groups: CommandGroups) -> None:
    kit = groups.add_parser("kit", help="the Kit account: the webhooks and sequences the config needs")
    kit_commands = kit.add_subparsers(title="commands", metavar="COMMAND")
    kit.set_defaults(handler=_usage(kit))
    hooks = kit_commands.add_parser(
        "hooks",
        help="check or sync Kit's webhooks (legacy rules or one v4 endpoint) against the config",
        description=(
            "The Kit webhooks the config needs, in one of two modes. --mode legacy: Kit legacy rules, "
            "one per event: tag_add and tag_remove for every tag an operation triggers on or an "
            "automation reads (trigger, goal, cancel_on, has_tag), and the subscriber status rules with "
            "kit.status_hooks: true, each pointing at {url}/webhooks/kit/{token}?event=...&tag=.... "
            "--mode v4: one signed v4 webhook endpoint at {url}/webhooks/kit/{token}, subscribed to the "
            "same events as types (subscriber.tag_added, subscriber.tag_removed, and the status types "
            "with kit.status_hooks), which replaces our legacy rules. The default is v4 for a config "
            "with kit.legacy_hooks: false, legacy otherwise. A rule or endpoint is ours when it points "
            "at {url}/webhooks/kit/; anything pointing elsewhere is never changed. The Kit API key "
            "comes from kit.api_key (else KIT_API_KEY), the API from KIT_API_BASE_URL (default "
            + DEFAULT_BASE_URL
            + "); the token is never printed. Exit codes: 0 in step (check) or done (sync), 1 drift "
            "found (check), 2 bad input, config or credentials, 3 Kit failed or refused a call (run "
            "again; sync continues where it stopped)."
        ),
    )
    hooks_commands = hooks.add_subparsers(title="commands", metavar="COMMAND")
    hooks.set_defaults(handler=_usage(hooks))
    for name, command, summary in (
        (
            "check",
            _hooks_check,
            "list drift: rules or endpoint missing, extra (ours, not needed), out of step (v4: another "
            "token, a wrong event set, disabled) or pointing elsewhere",
        ),
        (
            "sync",
            _hooks_sync,
            "create what is missing (rules and tags, or the endpoint), update an endpoint out of step, "
            "delete our extra ones; safe to repeat",
        ),
    ):
        sub = hooks_commands.add_parser(name, help=summary, description=summary)
        sub.add_argument(
            "--url",
            metavar="URL",
            help="the app's public base URL, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/api "
            "(default: PUBLIC_BASE_URL)",
        )
        sub.add_argument(
            "--config", metavar="FILE", help="the config file (default: MEMBERFLOW_CONFIG, else the example)"
        )
        sub.add_argument(
            "--mode",
            choices=HOOK_MODES,
            help="legacy: one Kit rule per event and tag; v4: one signed v4 webhook endpoint "
            "(default: v4 when kit.legacy_hooks is false, else legacy)",
        )
        if name == "sync":
            sub.add_argument(
                "--secret-file",
                metavar="PATH",
                help="v4: where to write a new endpoint's signing secret (a new file, readable by you "
                "only), which Kit shows only once; needed when sync creates the endpoint",
            )
        sub.set_defaults(handler=functools.partial(_run_hooks, command))

    sequences = kit_commands.add_parser(
        "sequences",
        help="look up in Kit the sequences the config's subscribe_sequence steps name",
        description="The Kit sequences the config's subscribe_sequence steps name, looked up in Kit.",
    )
    sequences_commands = sequences.add_subparsers(title="commands", metavar="COMMAND")
    sequences.set_defaults(handler=_usage(sequences))
    check = sequences_commands.add_parser(
        "check",
        help="list every subscribe_sequence step with the Kit sequence it names: ok or unknown (exit 1)",
        description=(
            "List every subscribe_sequence step of the config (automation and goal steps, nested ones, "
            "drafts too) by key path, and look up the sequence it names in Kit as delivery does: by id "
            "when it is a number Kit has as an id, else by name ignoring case. ok names the sequence "
            "found; unknown (Kit has no such sequence, so delivery would park the item) guesses the "
            "name meant and lists Kit's sequences. Kit's list does not say whether a sequence is "
            "active: adding a contact to an inactive one is refused when delivered, and the item is "
            "parked. Only reads Kit. The Kit API key comes from kit.api_key (else KIT_API_KEY), the API "
            "from KIT_API_BASE_URL (default " + DEFAULT_BASE_URL + "). Exit codes: 0 every sequence "
            "found (or no such steps), 1 some unknown, 2 bad config or credentials, 3 Kit failed or "
            "refused the call."
        ),
    )
    check.add_argument(
        "--config", metavar="FILE", help="the config file (default: MEMBERFLOW_CONFIG, else the example)"
    )
    check.set_defaults(handler=_sequences_check)

    resync = kit_commands.add_parser(
        "resync",
        help="queue a Kit sync for every contact (or one) through the app's admin API",
        description=(
            "Ask the deployed app (POST /admin/kit/resync) to queue one Kit outbox item per contact, page "
            "after page until every contact is queued, or for the one contact --email names. The outbox "
            "then delivers them at Kit's rate limit, each sending only what Kit lacks: about two "
            "requests a contact with tags, so 10,000 contacts take roughly three hours at 120 requests "
            "a minute. Use it after configuring kit.api_key, after restoring a Kit account, or after "
            "fixing the cause of parked Kit items. The app is at --url (default PUBLIC_BASE_URL); the "
            "admin token comes from ADMIN_TOKEN (a token or a reference such as ssm:...) and is never "
            "printed. Exit codes: 0 done, 2 refused (bad input, unknown contact, Kit not configured, "
            "wrong token) or no URL or token, 3 the app failed or did not answer (run again; "
            "--cursor goes on where it stopped, and a page sent again queues nothing twice)."
        ),
    )
    resync.add_argument("--url", metavar="URL", help="the app's base URL (default: PUBLIC_BASE_URL)")
    one_or_pages = resync.add_mutually_exclusive_group()
    one_or_pages.add_argument("--email", metavar="EMAIL", help="queue only this contact")
    one_or_pages.add_argument(
        "--cursor", metavar="CURSOR", help="go on from the cursor a failed run printed (the same resync)"
    )
    resync.add_argument(
        "--limit", metavar="N", type=int, help="contacts per request, 1 to 500 (default: the app's, 100)"
    )
    resync.set_defaults(handler=kit_resync)


# --- main --------------------------------------------------------------------------------------


COMMAND_GROUPS: tuple[Callable[[CommandGroups], None], ...] = (
    add_config_commands,
    add_simulate_command,
    add_kit_commands,
)


def _usage(parser: argparse.ArgumentParser) -> Handler:
    def show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        parser.print_usage(err)
        return 2

    return show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli", description="memberflow operator tools")
    groups = parser.add_subparsers(title="command groups", metavar="GROUP")
    for add_group in COMMAND_GROUPS:
        add_group(groups)
    parser.set_defaults(handler=_usage(parser))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help (0) and on usage errors (2); a caller of main() wants the code.
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        return 2
    handler: Handler = args.handler
    return handler(args, sys.stdout, sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
