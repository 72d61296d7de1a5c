"""Compile the validated config into the domain's own values (``chalicelib.domain.setup.Setup``).

This is the one place that knows both vocabularies: the pydantic schema, with its aliases and
defaults, on one side; the frozen domain dataclasses on the other. It runs once per load
(``parse_config``), and only on a config that passed validation, so it checks nothing itself.
A key added to the schema reaches the domain only when a line here copies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.config import automations as c
from chalicelib.config.base import FieldAssignment, FieldDelta
from chalicelib.config.model import (
    CancelActions,
    FailedPaymentActions,
    MemberflowConfig,
    OperationConfig,
    ProductConfig,
    RefundActions,
    TagActions,
)
from chalicelib.config.offerings import OfferingConfig
from chalicelib.domain.automations import definition as d
from chalicelib.domain.automations.book import AutomationBook
from chalicelib.domain.automations.canonical import TYPE_KEY, from_stored
from chalicelib.domain.setup import (
    DunningPolicy,
    FieldSpec,
    Module,
    Offering,
    Operation,
    Product,
    Reminder,
    Setup,
    TestContacts,
    frozen_map,
)
from chalicelib.domain.setup import TagActions as DomainTagActions

if TYPE_CHECKING:
    from chalicelib.adapters.email.templates import EmailTemplates, TemplateProblem


def compile_setup(config: MemberflowConfig) -> Setup:
    thrivecart = config.thrivecart
    return Setup(
        fields=field_specs(config),
        operations=frozen_map({op_id: _operation(op) for op_id, op in config.operations.items()}),
        products=frozen_map(
            {key: _product(product) for key, product in (thrivecart.products if thrivecart else {}).items()}
        ),
        accept_test_orders=thrivecart.accept_test_orders if thrivecart else False,
        offerings=frozen_map({oid: _offering(offering) for oid, offering in config.offerings.items()}),
        dunning=frozen_map(
            {
                pid: DunningPolicy(
                    c.parse_duration(policy.grace),
                    tuple(Reminder(c.parse_duration(r.after), r.send_email) for r in policy.reminders),
                    policy.on_recovered.send_email if policy.on_recovered else None,
                )
                for pid, policy in config.dunning.items()
            }
        ),
        kit_tag_ids=frozen_map(config.kit.tag_ids),
        test_contacts=TestContacts(config.test_contacts.emails, config.test_contacts.delay_scale),
        time_zone=config.time_zone,
        automations=AutomationBook.compile(
            {aid: compile_automation_config(a) for aid, a in config.automations.items()}
        ),
    )


_COMPILED: dict[int, tuple[MemberflowConfig, Setup]] = {}


def setup_of(config: MemberflowConfig) -> Setup:
    """The compiled setup of a config object, compiled once per object (configs are immutable)."""
    cached = _COMPILED.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    setup = compile_setup(config)
    if len(_COMPILED) > 64:
        _COMPILED.clear()
    _COMPILED[id(config)] = (config, setup)
    return setup


def field_specs(config: MemberflowConfig) -> Mapping[str, FieldSpec]:
    return frozen_map(
        {name: FieldSpec(spec.type, spec.min, spec.max, spec.default) for name, spec in config.fields.items()}
    )


_TEMPLATES: dict[int, tuple[MemberflowConfig, EmailTemplates | tuple[TemplateProblem, ...]]] = {}


def email_templates_of(config: MemberflowConfig) -> EmailTemplates:
    """The config's email templates, parsed and checked once per config object.

    Raises ``TemplateProblems``. The whole-file check and ``LoadedConfig`` both ask, so the
    templates of one load are parsed once. python-liquid is imported here, not with the package:
    it is needed only once a config is loaded.
    """
    from chalicelib.adapters.email.templates import (
        EmailSource,
        EmailTemplates,
        TemplateProblems,
        TemplateScope,
    )

    cached = _TEMPLATES.get(id(config))
    if cached is None or cached[0] is not config:
        sources = {
            email_id: EmailSource(email.subject, email.body, email.html, email.from_name)
            for email_id, email in config.emails.items()
        }
        outcome: EmailTemplates | tuple[TemplateProblem, ...]
        try:
            names = {oid: offering.name for oid, offering in config.offerings.items()}
            outcome = EmailTemplates.parse(sources, TemplateScope(field_specs(config), names))
        except TemplateProblems as failed:
            outcome = failed.problems
        if len(_TEMPLATES) > 64:
            _TEMPLATES.clear()
        cached = _TEMPLATES[id(config)] = (config, outcome)
    if isinstance(cached[1], EmailTemplates):
        return cached[1]
    raise TemplateProblems(cached[1])


def automation_from_stored(stored: Mapping[str, Any]) -> d.Automation:
    """A stored version's definition: the canonical form, or the schema dump older releases stored."""
    if TYPE_KEY in stored:
        return from_stored(stored)
    return compile_automation_config(c.AutomationConfig.model_validate(dict(stored)))


def _field_assignment(value: FieldAssignment) -> d.FieldAssignment:
    return d.FieldAssignment(value.field, value.value)


def _field_delta(value: FieldDelta) -> d.FieldDelta:
    return d.FieldDelta(value.field, value.by)


def _operation(op: OperationConfig) -> Operation:
    return Operation(
        trigger_tag=op.trigger_tag,
        run_limit=op.run_limit,
        set_field=_field_assignment(op.set_field) if op.set_field else None,
        increase_field=_field_delta(op.increase_field) if op.increase_field else None,
        decrease_field=_field_delta(op.decrease_field) if op.decrease_field else None,
        remove_tags=op.remove_tags,
        add_tags=op.add_tags,
        release_offering=op.release_offering,
        revoke_offering=op.revoke_offering,
    )


def _tag_actions(actions: TagActions | None) -> DomainTagActions | None:
    if actions is None:
        return None
    return DomainTagActions(
        add_tags=actions.add_tags,
        remove_tags=actions.remove_tags,
        release=actions.release,
        revoke=actions.revoke,
        revoke_at_period_end=actions.revoke_at_period_end if isinstance(actions, CancelActions) else (),
        reverse_credits=actions.reverse_credits if isinstance(actions, RefundActions) else False,
        partial=actions.partial if isinstance(actions, RefundActions) else "record",
        dunning=actions.dunning if isinstance(actions, FailedPaymentActions) else None,
    )


def _offering(offering: OfferingConfig) -> Offering:
    return Offering(
        name=offering.name,
        access_tag=offering.access_tag,
        revoke_tag=offering.revoke_tag,
        welcome_email=offering.welcome_email,
        modules=tuple(
            Module(m.id, m.name, m.tag, c.parse_duration(m.release_after)) for m in offering.modules
        ),
    )


def _product(product: ProductConfig) -> Product:
    return Product(
        on_purchase=_tag_actions(product.on_purchase),
        on_payment=_tag_actions(product.on_payment),
        on_refund=_tag_actions(product.on_refund),
        on_cancel=_tag_actions(product.on_cancel),
        on_payment_failed=_tag_actions(product.on_payment_failed),
        on_pause=_tag_actions(product.on_pause),
        on_resume=_tag_actions(product.on_resume),
        on_abandon=_tag_actions(product.on_abandon),
    )


# --- Automations --------------------------------------------------------------------------------


def compile_automation_config(config: c.AutomationConfig) -> d.Automation:
    return d.Automation(
        trigger=compile_event(config.trigger),
        steps=_steps(config.steps),
        reentry=config.reentry,
        time_zone=config.time_zone,
        goals=tuple(d.Goal(compile_event(g.on), _steps(g.steps), g.id) for g in config.goals),
        cancel_on=tuple(compile_event(spec) for spec in config.cancel_on),
        name=config.name,
        status=config.status,
    )


def compile_event(spec: c.EventSpec) -> d.EventSpec:
    if isinstance(spec, c.TagAddedEvent):
        return d.TagAddedEvent(spec.tag_added)
    if isinstance(spec, c.TagRemovedEvent):
        return d.TagRemovedEvent(spec.tag_removed)
    if isinstance(spec, c.FieldChangedEvent):
        return d.FieldChangedEvent(spec.field_changed)
    if isinstance(spec, c.OperationEvent):
        return d.OperationEvent(spec.operation)
    if isinstance(spec, c.OfferingReleasedEvent):
        return d.OfferingReleasedEvent(spec.offering_released)
    if isinstance(spec, c.OfferingRevokedEvent):
        return d.OfferingRevokedEvent(spec.offering_revoked)
    return d.ThriveCartEvent(spec.thrivecart.event, spec.thrivecart.product)


_COMPARISONS: dict[str, d.Comparison] = {
    "eq": "eq",
    "ne": "ne",
    "gt": "gt",
    "gte": "gte",
    "lt": "lt",
    "lte": "lte",
    "exists": "exists",
}


def compile_condition(condition: c.Condition) -> d.Condition:
    if isinstance(condition, c.HasTag):
        return d.HasTag(condition.has_tag)
    if isinstance(condition, c.HasAccess):
        target = condition.has_access
        if isinstance(target, str):
            return d.HasAccess(target)
        return d.HasAccess(target.offering, target.module)
    if isinstance(condition, c.FieldCompare):
        op, operand = condition.comparison
        return d.FieldCompare(condition.field, _COMPARISONS[op], operand)
    if isinstance(condition, c.AllOf):
        return d.AllOf(tuple(compile_condition(part) for part in condition.all))
    if isinstance(condition, c.AnyOf):
        return d.AnyOf(tuple(compile_condition(part) for part in condition.any))
    return d.Not(compile_condition(condition.not_))


def _steps(steps: tuple[c.Step, ...]) -> tuple[d.Step, ...]:
    return tuple(compile_step(step) for step in steps)


def compile_step(step: c.Step) -> d.Step:
    given = step.id
    if isinstance(step, c.AddTagStep):
        return d.AddTagStep(step.add_tag, given)
    if isinstance(step, c.RemoveTagStep):
        return d.RemoveTagStep(step.remove_tag, given)
    if isinstance(step, c.SetFieldStep):
        return d.SetFieldStep(_field_assignment(step.set_field), given)
    if isinstance(step, c.IncreaseFieldStep):
        return d.IncreaseFieldStep(_field_delta(step.increase_field), given)
    if isinstance(step, c.DecreaseFieldStep):
        return d.DecreaseFieldStep(_field_delta(step.decrease_field), given)
    if isinstance(step, c.RunOperationStep):
        return d.RunOperationStep(step.run_operation, given)
    if isinstance(step, c.ReleaseOfferingStep):
        return d.ReleaseOfferingStep(step.release_offering, given)
    if isinstance(step, c.RevokeOfferingStep):
        return d.RevokeOfferingStep(step.revoke_offering, given)
    if isinstance(step, c.DelayStep):
        return d.DelayStep(step.delay, c.parse_duration(step.delay), given)
    if isinstance(step, c.WaitUntilStep):
        target = step.wait_until
        wait = d.WaitUntil(target.date, target.field, target.time, target.weekdays, target.time_zone)
        return d.WaitUntilStep(wait, given)
    if isinstance(step, c.IfStep):
        return d.IfStep(compile_condition(step.if_), _steps(step.then), _steps(step.else_), given)
    if isinstance(step, c.SwitchStep):
        cases = tuple(d.SwitchCase(compile_condition(case.when), _steps(case.steps)) for case in step.switch)
        return d.SwitchStep(cases, _steps(step.else_), given)
    if isinstance(step, c.SendEmailStep):
        return d.SendEmailStep(step.send_email, given)
    if isinstance(step, c.SubscribeSequenceStep):
        return d.SubscribeSequenceStep(step.subscribe_sequence, given)
    if isinstance(step, c.WebhookStep):
        return d.WebhookStep(step.webhook.url, step.webhook.method, given)
    return d.ExitStep(given)
