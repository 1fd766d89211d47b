"""Secrets are write-only: redaction of what the admin API returns, and restoring on write-back."""

from screenpop.admin import REDACTED, redact, restore

BODY = {
    "name": "balance",
    "kind": "http",
    "options": {
        "url": "https://user:hunter2@accounting.example/api/{customer_id}",
        "headers": {"Authorization": "Bearer abc", "Accept": "application/json", "X-Api-Key": "k1"},
        "auth": {"type": "basic", "username": "svc", "password": "pw"},
        "fields": {"balance": "account.balance"},
    },
}


def test_redact_hides_every_secret_and_keeps_the_rest() -> None:
    """Passwords, tokens, secret headers and URL passwords are replaced; other values stay."""
    r = redact(BODY)
    assert r["options"]["url"] == f"https://user:{REDACTED}@accounting.example/api/{{customer_id}}"
    assert r["options"]["headers"] == {"Authorization": REDACTED, "Accept": "application/json", "X-Api-Key": REDACTED}
    assert r["options"]["auth"] == {"type": "basic", "username": "svc", "password": REDACTED}
    assert r["options"]["fields"] == {"balance": "account.balance"}
    text = str(r)
    assert "hunter2" not in text and "abc" not in text and "pw'" not in text and "k1" not in text
    assert BODY["options"]["auth"]["password"] == "pw"  # the original is untouched


def test_restore_keeps_stored_secrets_when_the_mark_comes_back() -> None:
    """GET, edit a field, PUT back: the secrets the admin never saw are kept, new ones replace them."""
    edited = redact(BODY)
    edited["options"]["fields"] = {"balance": "account.total"}
    edited["options"]["auth"]["password"] = "new-password"
    back = restore(edited, BODY)
    assert back["options"]["url"] == BODY["options"]["url"]
    assert back["options"]["headers"]["Authorization"] == "Bearer abc"
    assert back["options"]["auth"]["password"] == "new-password"
    assert back["options"]["fields"] == {"balance": "account.total"}


def test_restore_without_a_stored_value_keeps_the_mark() -> None:
    """A new connector that sends the mark gets the mark, not somebody else's secret."""
    assert restore({"options": {"token": REDACTED}}, None) == {"options": {"token": REDACTED}}
