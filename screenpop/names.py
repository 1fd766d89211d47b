"""The one canonical form in which agent ids and telephony addresses are compared, everywhere.

`Alice`, ` alice ` and `ALICE` are the same agent; `client:Alice` and `client:alice` the same address. The
config check and the admin API refuse two agents whose ids or addresses differ only in this way, and every
lookup (login, webhook `agents`, Twilio numbers, sessions) compares canonical forms.
"""

from __future__ import annotations


def canonical(value: str) -> str:
    """The form two ids or addresses are compared in: surrounding spaces removed, case folded."""
    return value.strip().casefold()
