"""PII masked by role: a connector's fields carry a rule, and the roles that see them in clear.

    masking:
      - field: email            # a key of the section's data (of each record when it is a list); for the
        rule: email             # identity connector, a key of the customer record or of its `extra`
        unmasked_for: [admin]   # roles that see the value as it is (default: none)
      - field: card_number
        rule: last4             # hide | last4 | email | pattern
      - field: notes
        rule: pattern
        pattern: "\\\\d{6,}"     # every match is replaced by dots

Masking happens on the server before a message is built (screenpop/calls.py builds one message per group
of recipients that sees the same thing), so a value masked for a role never reaches that role's browser.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from screenpop.models import CUSTOMER_SECTION, Card, Customer, Section

DOT = "\u2022"
HIDDEN = DOT * 6
Rules = Mapping[str, list["MaskRule"]]  # connector name -> its rules


class MaskRule(BaseModel):
    """One masked field of a connector."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, max_length=100)
    rule: Literal["hide", "last4", "email", "pattern"] = "hide"
    pattern: str | None = Field(default=None, max_length=500)  # a regular expression, for rule `pattern`
    unmasked_for: list[Literal["agent", "supervisor", "admin"]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> MaskRule:
        if self.field == "id":
            raise ValueError("field 'id': the customer id cannot be masked (the console needs it to pick a match)")
        if self.rule == "pattern":
            if not self.pattern:
                raise ValueError("rule 'pattern' needs a `pattern` (a regular expression)")
            try:
                re.compile(self.pattern)
            except re.error as err:
                raise ValueError(f"pattern: not a valid regular expression: {err}") from None
        return self

    def apply(self, value: Any) -> Any:
        """The value as the masked roles see it (None stays None)."""
        if value is None:
            return None
        text = str(value)
        if self.rule == "hide":
            return HIDDEN
        if self.rule == "last4":
            return DOT * max(0, len(text) - 4) + text[-4:] if len(text) > 4 else DOT * len(text)
        if self.rule == "email":
            local, at, domain = text.partition("@")
            return f"{local[:1]}{DOT * 3}@{domain}" if at and local else HIDDEN
        assert self.pattern is not None
        return re.sub(self.pattern, lambda m: DOT * len(m.group(0)), text)


def _mask_record(record: Any, rules: list[MaskRule], role: str, nested: bool) -> tuple[Any, bool]:
    """A record (dict) with the fields this role may not see masked; (new record, whether anything changed).
    Copies only what it changes (the record, and its `extra` for an identity record)."""
    if not isinstance(record, dict):
        return record, False
    out: dict[Any, Any] = record
    extra: Any = record.get("extra") if nested else None
    extra_copied = False
    for rule in rules:
        if role in rule.unmasked_for:
            continue
        if out.get(rule.field) is not None:
            if out is record:
                out = dict(record)
            out[rule.field] = rule.apply(out[rule.field])
        if isinstance(extra, dict) and extra.get(rule.field) is not None:
            if not extra_copied:
                extra, extra_copied = dict(extra), True
            extra[rule.field] = rule.apply(extra[rule.field])
    if extra_copied:
        if out is record:
            out = dict(record)
        out["extra"] = extra
    return out, out is not record


def mask_data(data: Any, rules: list[MaskRule], role: str, identity: bool = False) -> tuple[Any, bool]:
    """A section's data as `role` sees it: (data, whether anything was masked). Never changes `data`."""
    if identity and isinstance(data, dict):  # the customer section: {"match", "customer", "candidates"}
        customer, a = _mask_record(data.get("customer"), rules, role, True)
        candidates = data.get("candidates")
        b = False
        if isinstance(candidates, list):
            masked = [_mask_record(c, rules, role, True) for c in candidates]
            candidates, b = [m for m, _ in masked], any(c for _, c in masked)
        return ({**data, "customer": customer, "candidates": candidates} if a or b else data), a or b
    if isinstance(data, list):
        masked = [_mask_record(r, rules, role, False) for r in data]
        if any(c for _, c in masked):
            return [m for m, _ in masked], True
        return data, False
    return _mask_record(data, rules, role, False)


def _mask_customer(customer: Customer | None, rules: list[MaskRule], role: str) -> Customer | None:
    if customer is None:
        return None
    data, changed = _mask_record(customer.model_dump(), rules, role, True)
    return Customer.model_construct(**data) if changed else customer  # (masked strings of valid fields)


class Masker:
    """Masks sections and cards for a role, with the rules of the connectors in use (read at each call)."""

    def __init__(self, rules: Callable[[], Rules], role_of: Callable[[str], str]) -> None:
        self.rules, self.role_of = rules, role_of

    def active(self) -> bool:
        """True when any connector in use masks a field."""
        return any(self.rules().values())

    def section(self, section: Section, role: str) -> tuple[Section, bool]:
        """The section as `role` sees it, and whether anything was masked."""
        rules = self.rules().get(section.source) or []
        if not rules or section.data is None:
            return section, False
        data, changed = mask_data(section.data, rules, role, identity=section.name == CUSTOMER_SECTION)
        return (section.model_copy(update={"data": data}) if changed else section), changed

    def card(self, card: Card, role: str) -> tuple[Card, bool]:
        """The card as `role` sees it (its sections, and its customer and candidates), and whether anything
        was masked."""
        sections, any_changed = [], False
        for s in card.sections:
            masked, changed = self.section(s, role)
            sections.append(masked)
            any_changed = any_changed or changed
        if not any_changed:
            return card, False
        update: dict[str, Any] = {"sections": sections}
        rules = self.rules().get(next((s.source for s in card.sections if s.name == CUSTOMER_SECTION), ""))
        if rules:  # the card's own copy of the customer and candidates (what protocol.apply_section set)
            update["customer"] = _mask_customer(card.customer, rules, role)
            update["candidates"] = [c for c in (_mask_customer(c, rules, role) for c in card.candidates) if c]
        return card.model_copy(update=update), True

    def groups(self, agent_ids: Iterable[str]) -> dict[str, list[str]]:
        """The recipients by role (each role sees its own masked variant)."""
        out: dict[str, list[str]] = {}
        for a in agent_ids:
            out.setdefault(self.role_of(a), []).append(a)
        return out
