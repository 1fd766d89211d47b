"""Phone number normalisation."""

import gc

import phonenumbers
import pytest

from screenpop.phone import normalize


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+14155550100", "+14155550100"),
        ("4155550100", "+14155550100"),
        ("(415) 555-0100", "+14155550100"),
        ("sip:+14155550100@pbx.example.com", "+14155550100"),
        ("tel:+442079460958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
    ],
)
def test_valid_numbers_become_e164(raw: str, e164: str) -> None:
    """Common spellings of a valid number normalise to E.164 and keep the raw form."""
    caller = normalize(raw, "US")
    assert caller.status == "ok"
    assert caller.e164 == e164
    assert caller.raw == raw


@pytest.mark.parametrize("raw", ["", "anonymous", "Anonymous", "restricted", "+266696687", "sip:anonymous@x"])
def test_withheld_numbers_are_recognised(raw: str) -> None:
    """Hidden caller ids are reported as withheld, with nothing to look up."""
    caller = normalize(raw, "US")
    assert caller.status == "withheld"
    assert caller.e164 is None


@pytest.mark.parametrize("raw", ["abc", "12", "+1415555", "+99912345678"])
def test_unparsable_numbers_are_invalid(raw: str) -> None:
    """Garbage and impossible numbers are invalid, never guessed."""
    caller = normalize(raw, "US")
    assert caller.status == "invalid"
    assert caller.e164 is None


def test_default_region_applies_to_national_numbers() -> None:
    """A national number is read in the configured region."""
    assert normalize("020 7946 0958", "GB").e164 == "+442079460958"
    assert normalize("020 7946 0958", "GB").display == "020 7946 0958"
    assert normalize("+14155550100", "GB").display == "+1 415-555-0100"


def test_a_repeat_number_is_not_parsed_again_and_each_call_gets_its_own_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The second normalisation of a number skips phonenumbers; each call returns a new, equal model."""
    first = normalize("+1 415 555 0199")
    parsed: list[str] = []
    real_parse = phonenumbers.parse

    def counting_parse(number: str, region: str | None = None) -> phonenumbers.PhoneNumber:
        parsed.append(number)
        return real_parse(number, region)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    second = normalize("+1 415 555 0199")
    assert parsed == [] and second == first and second is not first
    second.display = "changed"
    assert normalize("+1 415 555 0199").display == first.display
    normalize("+1 415 555 0188")
    assert len(parsed) == 1  # a new number is parsed


def test_remembering_new_numbers_adds_nothing_the_garbage_collector_walks() -> None:
    """Normalising 300 new numbers (their models dropped) leaves no new object for the collector to track."""
    normalize("+1 415 555 0100")  # the region's metadata is loaded once, before counting
    gc.collect()
    before = len(gc.get_objects())
    for n in range(300):
        normalize(f"+1 415 555 {n:04d}")
    gc.collect()
    assert len(gc.get_objects()) - before < 30
