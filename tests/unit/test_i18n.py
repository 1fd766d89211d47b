"""The console's message catalogs (web/i18n/<lang>.json): complete, well-formed, and every key the code uses exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"
LANGUAGES = ("en", "sv", "fi", "el", "tl")


def catalog(lang: str) -> dict[str, str]:
    data = json.loads((WEB / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict) and all(isinstance(v, str) for v in data.values())
    return data


def test_the_five_languages_are_offered() -> None:
    """The switch lists exactly the languages that have a catalog."""
    js = (WEB / "js" / "i18n.js").read_text(encoding="utf-8")
    offered = re.search(r"export const LANGUAGES = \{([^}]*)\}", js)
    assert offered is not None
    assert tuple(re.findall(r"(\w+):", offered.group(1))) == LANGUAGES
    assert sorted(p.stem for p in (WEB / "i18n").glob("*.json")) == sorted(LANGUAGES)


@pytest.mark.parametrize("lang", LANGUAGES[1:])
def test_each_catalog_has_every_key_english_has(lang: str) -> None:
    """A catalog that lacks a key of English (or has one English does not) fails, naming the keys."""
    english, other = catalog("en"), catalog(lang)
    assert sorted(set(english) - set(other)) == [], f"{lang}.json lacks these keys"
    assert sorted(set(other) - set(english)) == [], f"{lang}.json has keys English does not"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_placeholders_match_english(lang: str) -> None:
    """A translation keeps the {placeholders} of its English message (none lost, none invented)."""
    english, other = catalog("en"), catalog(lang)
    for key, text in english.items():
        assert set(re.findall(r"\{(\w+)\}", other[key])) == set(re.findall(r"\{(\w+)\}", text)), (lang, key)


def test_every_key_the_pages_use_is_in_english() -> None:
    """Each t("key") in web/js and each data-i18n key in the pages is in en.json."""
    english = catalog("en")
    used: set[str] = set()
    for path in (WEB / "js").rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"\bt\(\"([a-z_]+\.[a-z_.]+)\"", text))
        used |= set(re.findall(r"\"((?:demo|conn|section|customer|keys)\.[a-z_]+)\"", text))
    for path in WEB.glob("*.html"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"data-i18n=\"([a-z_.]+)\"", text))
        used |= set(re.findall(r":([a-z]+\.[a-z_]+)", " ".join(re.findall(r"data-i18n-attr=\"([^\"]+)\"", text))))
    assert used, "no keys found: the pattern is wrong"
    assert sorted(used - set(english)) == []
