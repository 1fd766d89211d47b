"""PII masking by role: each rule, the identity record's fields, the card's own customer copy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from screenpop.masking import DOT, HIDDEN, Masker, MaskRule, mask_data
from screenpop.models import Caller, Card, Customer, Section, SectionStatus


@pytest.mark.parametrize(("rule", "value", "shown"), [
    ({"rule": "hide"}, "secret", HIDDEN),
    ({"rule": "last4"}, "4111111111111111", DOT * 12 + "1111"),
    ({"rule": "last4"}, "123", DOT * 3),
    ({"rule": "email"}, "jane.roe@example.com", f"j{DOT * 3}@example.com"),
    ({"rule": "email"}, "not an address", HIDDEN),
    ({"rule": "pattern", "pattern": r"\d{3}-\d{2}"}, "ssn 123-45-6789", f"ssn {DOT * 6}-6789"),
    ({"rule": "last4"}, 1234567, DOT * 3 + "4567"),
])
def test_each_rule(rule: dict[str, str], value: object, shown: str) -> None:
    """Each rule gives its partial form of the value."""
    assert MaskRule(field="x", **rule).apply(value) == shown  # type: ignore[arg-type]


def test_bad_rules_are_refused() -> None:
    """A pattern rule needs a valid pattern; the customer id cannot be masked."""
    for bad in ({"field": "x", "rule": "pattern"}, {"field": "x", "rule": "pattern", "pattern": "("},
                {"field": "id", "rule": "hide"}, {"field": "x", "rule": "blur"}):
        with pytest.raises(ValidationError):
            MaskRule.model_validate(bad)


def test_roles_listed_see_the_value_and_data_is_never_changed_in_place() -> None:
    """Only the roles listed see the clear value; the input data stays as it was."""
    rules = [MaskRule(field="iban", rule="last4", unmasked_for=["admin"])]
    data = [{"iban": "DE89370400440532013000", "amount": 3}, {"amount": 4}]
    masked, changed = mask_data(data, rules, "agent")
    assert changed and masked[0]["iban"].endswith("3000") and "0532" not in masked[0]["iban"]
    assert data[0]["iban"] == "DE89370400440532013000"
    assert mask_data(data, rules, "admin") == (data, False)


def test_card_masks_the_identity_record_and_its_copy() -> None:
    """The customer section's record (and its `extra`), the candidates and the card's customer are masked."""
    rules = {"people": [MaskRule(field="email", rule="email")]}
    jane = {"id": "C1", "name": "Jane", "extra": {"email": "jane@example.com"}}
    section = Section(name="customer", source="people", status=SectionStatus.OK,
                      data={"match": "one", "customer": jane, "candidates": [jane]})
    card = Card(call_id="c", caller=Caller(raw="1"), sections=[section], customer=Customer.model_validate(jane),
                candidates=[Customer.model_validate(jane)])
    masker = Masker(lambda: rules, lambda agent: "agent")
    shown, changed = masker.card(card, "agent")
    assert changed and "jane@example.com" not in shown.model_dump_json()
    assert shown.customer is not None and shown.customer.extra["email"] == f"j{DOT * 3}@example.com"
    assert "jane@example.com" in card.model_dump_json()  # the stored card is untouched
    assert masker.groups(["a", "b"]) == {"agent": ["a", "b"]}
