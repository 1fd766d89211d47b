"""Secrets are write-only and declared by each kind: redaction of what the admin API returns, restoring on
write-back only while the destination is unchanged."""

import pytest

from connectors.secrets import SecretKept
from screenpop.admin import REDACTED, redact, restore

BODY = {
    "name": "balance",
    "kind": "http",
    "options": {
        "url": "https://user:hunter2@accounting.example/api/{customer_id}?api_key=k2&key=k3&sig=k4&phone={phone}",
        "headers": {"X-Key": "k5", "Accept": "application/json", "X-Signature": "k6", "X-Tenant": "acme"},
        "public_headers": ["X-Tenant"],
        "auth": {"type": "basic", "username": "svc", "password": "pw"},
        "fields": {"balance": "account.balance"},
    },
}
PG = {"name": "crm", "kind": "sql",
      "options": {"url": "postgresql://app@db.example/crm?password=k7&sslmode=require", "query": "SELECT 1"}}


def test_redact_hides_every_declared_secret_whatever_its_name() -> None:
    """Userinfo, every query value, every header value and SecretStr fields are masked; declared public stay."""
    r = redact(BODY)
    assert r["options"]["url"] == (f"https://user:{REDACTED}@accounting.example/api/{{customer_id}}"
                                   f"?api_key={REDACTED}&key={REDACTED}&sig={REDACTED}&phone={{phone}}")
    assert r["options"]["headers"] == {"X-Key": REDACTED, "Accept": "application/json", "X-Signature": REDACTED,
                                       "X-Tenant": "acme"}
    assert r["options"]["auth"] == {"type": "basic", "username": "svc", "password": REDACTED}
    assert r["options"]["fields"] == {"balance": "account.balance"}
    text = str(r) + str(redact(PG))
    for secret in ("hunter2", "k2", "k3", "k4", "k5", "k6", "'pw'", "k7"):
        assert secret not in text
    assert "sslmode=require" in redact(PG)["options"]["url"]
    assert BODY["options"]["auth"]["password"] == "pw"  # the original is untouched


def test_an_unknown_kind_shows_no_value() -> None:
    """Options of a kind screenpop does not have are masked whole: nothing is guessed."""
    r = redact({"kind": "soap", "options": {"endpoint": "https://x", "n": 3}})
    assert r["options"] == {"endpoint": REDACTED, "n": 3}


def test_restore_keeps_stored_secrets_when_the_mark_comes_back() -> None:
    """GET, edit a field, PUT back: the secrets the admin never saw are kept, new ones replace them."""
    edited = redact(BODY)
    edited["options"]["fields"] = {"balance": "account.total"}
    edited["options"]["auth"]["password"] = "new-password"
    back = restore(edited, BODY)
    assert back["options"]["url"] == BODY["options"]["url"]
    assert back["options"]["headers"]["X-Key"] == "k5"
    assert back["options"]["auth"]["password"] == "new-password"
    assert back["options"]["fields"] == {"balance": "account.total"}


def test_a_masked_secret_is_not_sent_to_another_host() -> None:
    """Pointing the URL at another host (or port, or scheme) with the mark still there is refused."""
    for url in ("https://evil.example/api/{customer_id}", "https://accounting.example:8443/{customer_id}",
                "http://accounting.example/api/{customer_id}"):
        edited = redact(BODY)
        edited["options"]["url"] = url
        with pytest.raises(SecretKept, match="enter the secret again"):
            restore(edited, BODY)


def test_the_mark_without_a_stored_value_is_refused() -> None:
    """A new connector that sends the mark gets an error, never somebody else's secret nor the mark itself."""
    with pytest.raises(SecretKept, match="no secret is stored"):
        restore({"kind": "http", "options": {"url": "http://x/", "headers": {"X-Key": REDACTED}}}, None)
