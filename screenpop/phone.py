"""Phone numbers: keep the raw number, normalise to E.164, and say when there is nothing to look up."""

from __future__ import annotations

import re
from collections import OrderedDict

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


# "<region>:<raw>" -> Caller fields, oldest first (an OrderedDict: dropping the oldest of a plain dict again
# and again makes next(iter()) walk the holes left at its front)
_KNOWN: OrderedDict[str, dict[str, str | None]] = OrderedDict()
_KNOWN_MAX = 4096


def normalize(raw: str, region: str = "US") -> Caller:
    """The caller as received (`raw`) and in E.164 when it is a valid number; else withheld/invalid."""
    raw = (raw or "").strip()
    key = f"{region}:{raw}"
    fields = _KNOWN.get(key)
    if fields is None:
        # repeat callers skip phonenumbers (pure Python, slow: bench/RESULTS.md). The cache holds only strings,
        # in dicts the garbage collector does not track: a caller never seen before adds nothing it must
        # walk on every collection (an lru_cache of models added four objects per call).
        fields = _normalize(raw, region).model_dump()
        if len(_KNOWN) >= _KNOWN_MAX:
            _KNOWN.popitem(last=False)
        _KNOWN[key] = fields
    return Caller.model_construct(None, **fields)  # a new model each time: cards may change theirs


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
    if region_of_number is None or not phonenumbers.is_valid_number_for_region(num, region_of_number):
        return Caller(raw=raw, status="invalid", display=raw)
    e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if region_of_number == region
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return Caller(raw=raw, e164=e164, display=phonenumbers.format_number(num, fmt), status="ok")
