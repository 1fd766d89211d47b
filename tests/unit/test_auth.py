"""Agents, passwords and session tokens."""

from screenpop.auth import Directory, Tokens, hash_password
from screenpop.config import AgentConfig


def directory() -> Directory:
    return Directory([AgentConfig(id="alice", name="Alice", password_hash=hash_password("pw"),
                                  extensions=["1001"], addresses=["client:alice", "sip:alice@pbx"])])


async def test_password_check() -> None:
    """The right password gives the agent; a wrong one or an unknown user gives None."""
    d = directory()
    assert (await d.authenticate("alice", "pw")).id == "alice"
    assert await d.authenticate("alice", "nope") is None
    assert await d.authenticate("mallory", "pw") is None


def test_addresses_resolve_to_the_agent() -> None:
    """Id, extension, Twilio client and SIP URI forms all find the agent; others find nobody."""
    d = directory()
    for addr in ("alice", "1001", "client:alice", "CLIENT:Alice", "sip:1001@10.0.0.5", "sip:alice@pbx"):
        assert d.resolve(addr) == "alice", addr
    assert d.resolve("1002") is None


def test_tokens_expire_and_resist_tampering() -> None:
    """A token is valid until it expires; any change to it or another secret makes it invalid."""
    t = Tokens(b"k" * 32, ttl_s=60)
    token = t.issue("alice", now=1000)
    assert t.check(token, now=1059) == "alice"
    assert t.check(token, now=1061) is None
    assert t.check(token.replace("alice", "bob"), now=1000) is None
    assert Tokens(b"other", ttl_s=60).check(token, now=1000) is None
    assert t.check("garbage", now=1000) is None
    assert t.check(None) is None


def test_public_view_has_no_hash() -> None:
    """What an agent learns about themselves never includes the password hash."""
    agent = directory().get("alice")
    assert "password_hash" not in agent.public()
    assert "argon2" not in repr(agent)
