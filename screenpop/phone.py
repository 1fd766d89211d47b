"""Phone numbers: keep the raw number, normalise to E.164, and say when there is nothing to look up."""

from __future__ import annotations

import functools
import re

import phonenumbers

from screenpop.models import Caller

# What PBXs and carriers put in the caller id when the number is hidden.
_WITHHELD = {
    "", "anonymous", "unknown", "restricted", "private", "withheld", "unavailable", "blocked",
    "no caller id", "nocallerid", "anonymous@anonymous.invalid",
    "+266696687", "266696687",  # Twilio's "ANONYMOUS" on a keypad
    "+7378742833", "+2562533", "+8656696",  # Twilio: RESTRICTED, BLOCKED, UNKNOWN
}
_SIP = re.compile(r"^(?:sips?:|tel:)?([^@;]+)(?:@.*)?$", re.IGNORECASE)


def normalize(raw: str, region: str = "US") -> Caller:
    """The caller as received (`raw`) and in E.164 when it is a valid number; else withheld/invalid."""
    return _normalize((raw or "").strip(), region).model_copy()  # a private copy: cards may change theirs


@functools.lru_cache(maxsize=4096)  # repeat callers skip phonenumbers (pure Python, ~0.1 ms a number)
def _normalize(raw: str, region: str) -> Caller:
    if raw.lower() in _WITHHELD:
        return Caller(raw=raw, status="withheld", display="Number withheld")
    m = _SIP.match(raw)
    candidate = m.group(1) if m else raw
    if candidate.lower() in _WITHHELD:
        return Caller(raw=raw, status="withheld", display="Number withheld")
    compact = re.sub(r"[\s().\-/]", "", candidate)
    if compact.startswith("00") and compact[2:].isdigit():
        candidate = "+" + compact[2:]
    try:
        num = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return Caller(raw=raw, status="invalid", display=raw)
    region_of_number = phonenumbers.region_code_for_number(num)  # what is_valid_number would look up again
    if not phonenumbers.is_valid_number_for_region(num, region_of_number):
        return Caller(raw=raw, status="invalid", display=raw)
    e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if region_of_number == region
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return Caller(raw=raw, e164=e164, display=phonenumbers.format_number(num, fmt), status="ok")
