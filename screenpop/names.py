"""How names are compared: agent ids, extensions and telephony addresses collide when their canonical forms
are equal (`Alice`, ` alice ` and `ALICE` are one name)."""

from __future__ import annotations


def canonical(value: str) -> str:
    """The form two names are compared in: surrounding blanks removed, case folded."""
    return value.strip().casefold()
