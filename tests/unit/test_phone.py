"""Phone number normalisation."""

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


def test_the_number_cache_holds_nothing_the_garbage_collector_walks() -> None:
    """A normalised number is remembered as plain strings in an untracked dict, and each call gets its own model."""
    import gc

    from screenpop import phone

    first = normalize("+1 415 555 0199")
    fields = phone._KNOWN["US:+1 415 555 0199"]
    assert not gc.is_tracked(fields) and fields["e164"] == "+14155550199"
    second = normalize("+1 415 555 0199")
    assert second == first and second is not first
