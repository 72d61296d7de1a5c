"""Conditions: comparisons by example, and the algebra of all/any/not as properties.

``evaluate`` is the only place a branch is decided, and what it records (the tags and fields it
looked at) is what an operator reads to learn why a branch ran; both are checked here against a
small ``Facts`` fake, without any engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.config import automations as schema
from chalicelib.config.compile import compile_condition
from chalicelib.domain.automations.conditions import (
    FactValue,
    Verdict,
    compare,
    describe,
    evaluate,
    parse_when,
)
from chalicelib.domain.automations.definition import (
    AllOf,
    AnyOf,
    Condition,
    FieldCompare,
    HasAccess,
    HasTag,
    Not,
)


@dataclass(frozen=True)
class Facts:
    tags: frozenset[str] = frozenset()
    fields: Mapping[str, FactValue] = field(default_factory=dict)
    offerings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Offering id -> released modules, for the offerings the contact has now."""

    def has_tag(self, tag: str) -> bool:
        return tag in self.tags

    def field_value(self, name: str) -> FactValue:
        return self.fields.get(name)

    def has_access(self, offering: str, module: str | None = None) -> bool:
        if offering not in self.offerings:
            return False
        return module is None or module in self.offerings[offering]


def facts(*tags: str, **fields: FactValue) -> Facts:
    return Facts(frozenset(tags), fields)


def tag(name: str) -> HasTag:
    return HasTag(has_tag=name)


def field_is(name: str, **comparison: object) -> FieldCompare:
    compiled = compile_condition(schema.FieldCompare.model_validate({"field": name, **comparison}))
    assert isinstance(compiled, FieldCompare)
    return compiled


# --- examples -----------------------------------------------------------------------------------


class TestNumbers:
    @pytest.mark.parametrize(
        ("op", "operand", "expected"),
        [
            ("eq", Decimal(50), True),
            ("eq", Decimal("50.00"), True),
            ("eq", "50", True),  # a quoted number in YAML still compares as a number
            ("eq", Decimal(51), False),
            ("ne", Decimal(51), True),
            ("ne", Decimal(50), False),
            ("gt", Decimal(49), True),
            ("gt", Decimal(50), False),
            ("gte", Decimal(50), True),
            ("gte", Decimal("50.5"), False),
            ("lt", Decimal(51), True),
            ("lt", Decimal(50), False),
            ("lte", Decimal(50), True),
            ("lte", Decimal("49.99"), False),
        ],
    )
    def test_compare(self, op: str, operand: object, expected: bool) -> None:
        assert compare(Decimal(50), op, operand) is expected

    @pytest.mark.parametrize(("op", "expected"), [("eq", False), ("ne", True), ("gt", False), ("lt", False)])
    def test_a_number_against_text_that_is_no_number(self, op: str, expected: bool) -> None:
        assert compare(Decimal(50), op, "lots") is expected

    def test_evaluate_records_the_value_as_people_write_it(self) -> None:
        verdict = evaluate(field_is("credits", gte=100), facts(credits=Decimal("150.00")))
        assert verdict == Verdict(True, {}, {"credits": "150"})
        verdict = evaluate(field_is("credits", gte=100), facts(credits=Decimal("99.50")))
        assert verdict == Verdict(False, {}, {"credits": "99.5"})


class TestText:
    @pytest.mark.parametrize(
        ("value", "op", "operand", "expected"),
        [
            ("sales", "eq", "sales", True),
            ("sales", "eq", "Sales", False),  # exact, case included
            ("sales", "eq", "sales ", False),
            ("sales", "ne", "marketing", True),
            ("sales", "ne", "sales", False),
            ("5", "eq", Decimal(5), True),  # a text field compared to a YAML number
        ],
    )
    def test_compare(self, value: str, op: str, operand: object, expected: bool) -> None:
        assert compare(value, op, operand) is expected

    def test_evaluate(self) -> None:
        verdict = evaluate(field_is("track", eq="sales"), facts(track="sales"))
        assert verdict.as_dict() == {"result": True, "tags": {}, "fields": {"track": "sales"}}


class TestDates:
    JAN_5 = dt.date(2026, 1, 5)

    @pytest.mark.parametrize(
        ("op", "operand", "expected"),
        [
            ("gt", "2026-01-04", True),
            ("gt", "2026-01-05", False),
            ("gte", "2026-01-05", True),
            ("lt", "2026-01-06", True),
            ("eq", "2026-01-05", True),
            ("eq", "2026-01-05T00:00:00Z", True),
            ("lt", "2026-01-05T00:00:01+00:00", True),
            ("gt", "2026-01-04T23:00:00-02:00", False),  # that is 01:00 UTC on the 5th
            ("ne", "not a date", True),
            ("eq", "not a date", False),
            ("gt", "not a date", False),
        ],
    )
    def test_compare_a_date(self, op: str, operand: str, expected: bool) -> None:
        assert compare(self.JAN_5, op, operand) is expected

    def test_a_date_time_without_zone_is_utc(self) -> None:
        noon = dt.datetime(2026, 1, 5, 12, 0)
        assert compare(noon, "eq", "2026-01-05T12:00:00Z")
        assert compare(noon, "gt", "2026-01-05")

    def test_a_date_operand_from_yaml(self) -> None:
        assert compare(self.JAN_5, "eq", dt.date(2026, 1, 5))
        assert compare(self.JAN_5, "lt", dt.datetime(2026, 1, 5, 0, 1, tzinfo=dt.UTC))

    def test_evaluate_records_the_iso_date(self) -> None:
        verdict = evaluate(field_is("renewal", lt="2026-02-01"), facts(renewal=self.JAN_5))
        assert verdict == Verdict(True, {}, {"renewal": "2026-01-05"})

    @pytest.mark.parametrize(
        ("raw", "parsed"),
        [
            ("2026-01-05", dt.date(2026, 1, 5)),
            (" 2026-01-05 ", dt.date(2026, 1, 5)),
            ("2026-01-05T09:30:00Z", dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)),
            (dt.date(2026, 1, 5), dt.date(2026, 1, 5)),
            ("05/01/2026", None),
            ("", None),
            (20260105, None),
            (None, None),
        ],
    )
    def test_parse_when(self, raw: object, parsed: object) -> None:
        assert parse_when(raw) == parsed


class TestExistsAndEmpty:
    @pytest.mark.parametrize(
        ("value", "exists"),
        [(None, False), (Decimal(0), True), ("sales", True), (dt.date(2026, 1, 5), True)],
    )
    def test_exists(self, value: FactValue, exists: bool) -> None:
        assert compare(value, "exists", True) is exists
        assert compare(value, "exists", False) is not exists

    @pytest.mark.parametrize(
        ("op", "operand"),
        [
            ("eq", Decimal(0)),
            ("eq", ""),
            ("gt", Decimal(-1)),
            ("gte", Decimal(0)),
            ("lt", Decimal(1)),
            ("lte", "2099-01-01"),
        ],
    )
    def test_an_empty_field_is_neither_equal_above_nor_below_anything(self, op: str, operand: object) -> None:
        assert compare(None, op, operand) is False

    def test_an_empty_field_is_not_equal_to_anything(self) -> None:
        assert compare(None, "ne", "sales") is True
        assert compare(None, "ne", Decimal(0)) is True

    def test_evaluate_records_an_empty_field_as_none(self) -> None:
        verdict = evaluate(field_is("track", exists=False), facts())
        assert verdict == Verdict(True, {}, {"track": None})

    def test_an_unknown_comparison_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="unknown comparison 'between'"):
            compare(Decimal(1), "between", Decimal(2))


class TestRecording:
    def test_every_part_is_evaluated_and_recorded_without_short_circuit(self) -> None:
        condition = AnyOf(
            any=(
                tag("VIP Member"),
                AllOf(all=(tag("Coaching"), field_is("credits", gte=100))),
                Not(not_=field_is("track", eq="sales")),
            )
        )
        verdict = evaluate(condition, facts("VIP Member", credits=Decimal(20), track="sales"))
        assert verdict.result is True
        assert verdict.tags == {"VIP Member": True, "Coaching": False}
        assert verdict.fields == {"credits": "20", "track": "sales"}

    def test_the_yaml_shapes_compile_to_the_same_values(self) -> None:
        built = Not(not_=AllOf(all=(tag("A"), field_is("score", gte=5))))
        yaml_shape = {"not": {"all": [{"has_tag": "A"}, {"field": "score", "gte": 5}]}}
        assert compile_condition(schema.Not.model_validate(yaml_shape)) == built

    def test_a_condition_is_described_in_its_yaml_shape(self) -> None:
        condition = AnyOf(any=(Not(not_=tag("A")), field_is("score", gte=5), field_is("track", exists=True)))
        assert describe(condition) == {
            "any": [
                {"not": {"has_tag": "A"}},
                {"field": "score", "gte": "5"},
                {"field": "track", "exists": True},
            ]
        }


class TestAccess:
    MEMBER = Facts(offerings={"foundation": ("m1",)})

    @pytest.mark.parametrize(
        ("condition", "expected", "seen"),
        [
            (HasAccess("foundation"), True, {"foundation": True}),
            (HasAccess("workbook"), False, {"workbook": False}),
            (HasAccess("foundation", "m1"), True, {"foundation/m1": True}),
            (HasAccess("foundation", "m2"), False, {"foundation/m2": False}),
            (HasAccess("workbook", "m1"), False, {"workbook/m1": False}),
        ],
    )
    def test_the_offering_now_and_a_released_module(
        self, condition: HasAccess, expected: bool, seen: dict[str, bool]
    ) -> None:
        verdict = evaluate(condition, self.MEMBER)
        assert verdict == Verdict(expected, {}, {}, seen)
        assert verdict.as_dict() == {"result": expected, "tags": {}, "fields": {}, "access": seen}

    def test_nested_with_tags_every_part_is_recorded(self) -> None:
        condition = AllOf(
            all=(
                HasAccess("foundation"),
                Not(not_=HasAccess("foundation", "m2")),
                AnyOf(any=(tag("VIP Member"), HasAccess("workbook"))),
            )
        )
        verdict = evaluate(condition, Facts(frozenset({"VIP Member"}), offerings={"foundation": ("m1",)}))
        assert verdict.result is True
        assert verdict.tags == {"VIP Member": True}
        assert verdict.access == {"foundation": True, "foundation/m2": False, "workbook": False}

    def test_a_decision_that_looks_at_no_access_records_none(self) -> None:
        assert "access" not in evaluate(tag("A"), facts("A")).as_dict()

    def test_both_forms_compile_from_yaml_and_are_described_as_written(self) -> None:
        yaml_shape = {
            "any": [{"has_access": "foundation"}, {"has_access": {"offering": "foundation", "module": "m1"}}]
        }
        compiled = compile_condition(schema.AnyOf.model_validate(yaml_shape))
        assert compiled == AnyOf(any=(HasAccess("foundation"), HasAccess("foundation", "m1")))
        assert describe(compiled) == yaml_shape


# --- properties ---------------------------------------------------------------------------------

TAGS = ("A", "B", "C", "VIP Member", "Purchase – Foundation")
tag_sets = st.frozensets(st.sampled_from(TAGS))
scores = st.one_of(st.none(), st.integers(-5, 15).map(Decimal))
fact_sets = st.builds(lambda tags, score: Facts(tags, {"score": score}), tag_sets, scores)

leaves: st.SearchStrategy[Condition] = st.one_of(
    st.sampled_from(TAGS).map(tag),
    st.tuples(st.sampled_from(("eq", "ne", "gt", "gte", "lt", "lte")), st.integers(-5, 15)).map(
        lambda pair: field_is("score", **{pair[0]: pair[1]})
    ),
    st.booleans().map(lambda flag: field_is("score", exists=flag)),
)


def _compound(children: st.SearchStrategy[Condition]) -> st.SearchStrategy[Condition]:
    parts = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        parts.map(lambda items: AllOf(all=items)),
        parts.map(lambda items: AnyOf(any=items)),
        children.map(lambda inner: Not(not_=inner)),
    )


conditions: st.SearchStrategy[Condition] = st.recursive(leaves, _compound, max_leaves=12)


def holds(condition: Condition, on: Facts) -> bool:
    return evaluate(condition, on).result


def reference(condition: Condition, on: Facts) -> bool:
    """The meaning of a condition, written out independently of the code under test."""
    if isinstance(condition, HasTag):
        return condition.has_tag in on.tags
    if isinstance(condition, FieldCompare):
        value = on.fields.get(condition.field)
        op, operand = condition.op, condition.operand
        if op == "exists":
            return (value is not None) is operand
        if value is None:
            return op == "ne"
        assert isinstance(value, Decimal)
        assert isinstance(operand, Decimal)
        return {
            "eq": value == operand,
            "ne": value != operand,
            "gt": value > operand,
            "gte": value >= operand,
            "lt": value < operand,
            "lte": value <= operand,
        }[op]
    if isinstance(condition, AllOf):
        return all(reference(c, on) for c in condition.all)
    if isinstance(condition, AnyOf):
        return any(reference(c, on) for c in condition.any)
    return not reference(condition.not_, on)


def mentioned(condition: Condition) -> tuple[set[str], set[str]]:
    """The tags and the fields a condition names anywhere inside it."""
    if isinstance(condition, HasTag):
        return {condition.has_tag}, set()
    if isinstance(condition, FieldCompare):
        return set(), {condition.field}
    children = (
        condition.all
        if isinstance(condition, AllOf)
        else condition.any
        if isinstance(condition, AnyOf)
        else (condition.not_,)
    )
    tags: set[str] = set()
    fields: set[str] = set()
    for child in children:
        child_tags, child_fields = mentioned(child)
        tags |= child_tags
        fields |= child_fields
    return tags, fields


PROPERTY = settings(max_examples=300, deadline=None)


class TestAlgebra:
    @PROPERTY
    @given(conditions, fact_sets)
    def test_agrees_with_the_reference_meaning(self, condition: Condition, on: Facts) -> None:
        assert holds(condition, on) is reference(condition, on)

    @PROPERTY
    @given(conditions, conditions, fact_sets)
    def test_de_morgan(self, a: Condition, b: Condition, on: Facts) -> None:
        assert holds(Not(not_=AllOf(all=(a, b))), on) == holds(AnyOf(any=(Not(not_=a), Not(not_=b))), on)
        assert holds(Not(not_=AnyOf(any=(a, b))), on) == holds(AllOf(all=(Not(not_=a), Not(not_=b))), on)

    @PROPERTY
    @given(conditions, fact_sets)
    def test_double_negation(self, condition: Condition, on: Facts) -> None:
        plain = evaluate(condition, on)
        twice = evaluate(Not(not_=Not(not_=condition)), on)
        assert twice == plain
        assert evaluate(Not(not_=condition), on).result is not plain.result

    @PROPERTY
    @given(conditions, fact_sets)
    def test_a_single_condition_list_is_the_condition(self, condition: Condition, on: Facts) -> None:
        plain = evaluate(condition, on)
        assert evaluate(AllOf(all=(condition,)), on) == plain
        assert evaluate(AnyOf(any=(condition,)), on) == plain

    @PROPERTY
    @given(conditions, fact_sets)
    def test_identity_elements(self, condition: Condition, on: Facts) -> None:
        # With "A" among the contact's tags, has_tag A is a true and not(has_tag A) a false.
        with_a = Facts(on.tags | {"A"}, on.fields)
        true, false = tag("A"), Not(not_=tag("A"))
        assert holds(AllOf(all=(condition, true)), with_a) == holds(condition, with_a)
        assert holds(AnyOf(any=(condition, false)), with_a) == holds(condition, with_a)
        assert holds(AllOf(all=(condition, false)), with_a) is False
        assert holds(AnyOf(any=(condition, true)), with_a) is True

    @PROPERTY
    @given(
        st.lists(conditions, min_size=1, max_size=4).flatmap(
            lambda parts: st.tuples(st.just(parts), st.permutations(parts))
        ),
        fact_sets,
    )
    def test_order_does_not_matter(self, orders: tuple[list[Condition], list[Condition]], on: Facts) -> None:
        parts, shuffled = orders
        for original, reordered in [
            (AllOf(all=tuple(parts)), AllOf(all=tuple(shuffled))),
            (AnyOf(any=tuple(parts)), AnyOf(any=tuple(shuffled))),
        ]:
            before, after = evaluate(original, on), evaluate(reordered, on)
            assert after.result is before.result
            assert dict(after.tags) == dict(before.tags)
            assert dict(after.fields) == dict(before.fields)

    @PROPERTY
    @given(st.lists(conditions, min_size=1, max_size=4), fact_sets)
    def test_all_and_any_are_pythons(self, parts: list[Condition], on: Facts) -> None:
        results = [holds(p, on) for p in parts]
        assert holds(AllOf(all=tuple(parts)), on) is all(results)
        assert holds(AnyOf(any=tuple(parts)), on) is any(results)

    @PROPERTY
    @given(st.sampled_from(TAGS), tag_sets)
    def test_has_tag_is_set_membership(self, name: str, tags: frozenset[str]) -> None:
        verdict = evaluate(tag(name), Facts(tags))
        assert verdict.result is (name in tags)
        assert verdict.tags == {name: name in tags}

    @PROPERTY
    @given(conditions, fact_sets)
    def test_the_verdict_records_every_tag_and_field_mentioned(self, condition: Condition, on: Facts) -> None:
        verdict = evaluate(condition, on)
        tags, fields = mentioned(condition)
        assert set(verdict.tags) == tags
        assert all(present is (name in on.tags) for name, present in verdict.tags.items())
        assert set(verdict.fields) == fields
        score = on.fields.get("score")
        if fields:
            assert verdict.fields["score"] == (None if score is None else str(score))
