"""Agents, passwords and session tokens.

Passwords are argon2id hashes (argon2-cffi) kept in the config file, made with RFC 9106's second
recommended profile (section 4, "low memory": t=3 passes, m=64 MiB, p=4 lanes, 16-byte salt, 32-byte tag):
`argon2.profiles.RFC_9106_LOW_MEMORY`. A hash made with other parameters still verifies (they are in it).
Checking one costs tens of milliseconds of CPU and 64 MiB of memory, so it runs in a thread, never in the
event loop, and at most `hashes_at_once` run at a time (SCREENPOP_LOGIN_HASHES_AT_ONCE, default 2): a
flood of logins waits in line (at most MAX_WAITING, then LoginBusy) instead of taking every core and
gigabytes of memory from the webhooks.

Agent ids and addresses are compared in their canonical form (screenpop.names).

`Tokens` (stateless signed tokens) is what the benchmark's floor uses; screenpop's own sessions are kept on
the server (screenpop.sessions).

A session token is `<agent id>.<expiry unix s>.<hex HMAC-SHA256>` signed with the session secret. It is
stateless, so every instance that shares the secret accepts it; the agent id inside is checked against the
current directory, so removing an agent from the config ends their sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

from screenpop.config import AgentConfig
from screenpop.names import canonical

COOKIE_NAME = "screenpop_session"
MAX_WAITING = 64  # logins waiting for a hash slot; more are answered 429 at once
_hasher = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
# Verified against when the username is unknown, so that both cases cost the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(8))


def hash_password(password: str) -> str:
    """An argon2id hash for the config file."""
    return _hasher.hash(password)


@dataclass(frozen=True)
class Agent:
    """One agent as the service sees it."""

    id: str
    name: str
    role: str
    extensions: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    password_hash: str = field(default="", repr=False)

    def public(self) -> dict[str, object]:
        """What the agent may learn about themselves (no hash)."""
        return {
            "id": self.id,
            "name": self.name or self.id,
            "role": self.role,
            "extensions": list(self.extensions),
            "addresses": list(self.addresses),
        }


class LoginBusy(Exception):
    """Too many logins are waiting for a password check; the client should retry in a moment."""


class Directory:
    """The agents, found by id or by any of their telephony addresses (compared in canonical form)."""

    def __init__(self, agents: list[AgentConfig], hashes_at_once: int = 2) -> None:
        self._hashing = asyncio.Semaphore(hashes_at_once)
        self._waiting = 0
        self._by_id: dict[str, Agent] = {}
        self._by_address: dict[str, str] = {}
        self.load(agents)

    def load(self, agents: list[AgentConfig]) -> None:
        """Replace every agent at once (the admin console's changes, screenpop/agentadmin.py). A disabled
        agent is left out: they cannot sign in, their sessions stop, no call rings for them."""
        by_id: dict[str, Agent] = {}
        by_address: dict[str, str] = {}
        for a in agents:
            if a.disabled:
                continue
            by_id[canonical(a.id)] = Agent(
                id=a.id, name=a.name, role=a.role, extensions=tuple(a.extensions),
                addresses=tuple(a.addresses), password_hash=a.password_hash,
            )
            for addr in (a.id, *a.extensions, *a.addresses):
                by_address[canonical(addr)] = a.id
        self._by_id, self._by_address = by_id, by_address

    def role_of(self, agent_id: str) -> str:
        """The agent's role; `agent` (the least) for an id the directory does not know."""
        agent = self.get(agent_id)
        return agent.role if agent is not None else "agent"

    def get(self, agent_id: str) -> Agent | None:
        """The agent with this id (in any case), or None."""
        return self._by_id.get(canonical(agent_id))

    def resolve(self, address: str) -> str | None:
        """The agent id for an id, extension or telephony address (`1001`, `client:alice`, `sip:1001@pbx`)."""
        key = canonical(address)
        found = self._by_address.get(key)
        if found is None and key.startswith(("sip:", "sips:")):
            user = key.split(":", 1)[1].split("@", 1)[0]
            found = self._by_address.get(user) or self._by_address.get(f"sip:{user}")
        if found is None and "/" in key and ":" not in key:  # a PBX interface: PJSIP/1001, SIP/1001, user/1001
            found = self._by_address.get(key.rsplit("/", 1)[1].split("@", 1)[0])
        return found

    async def authenticate(self, username: str, password: str) -> Agent | None:
        """The agent if the password is right, else None. Runs the hash check in a thread, at most
        `hashes_at_once` at a time; LoginBusy when MAX_WAITING logins already wait."""
        agent = self.get(username)
        stored = agent.password_hash if agent else _DUMMY_HASH
        if self._waiting >= MAX_WAITING:
            raise LoginBusy("too many logins at once; try again in a moment")

        def check() -> bool:
            try:
                return _hasher.verify(stored, password)
            except (VerificationError, InvalidHashError):
                return False

        self._waiting += 1
        try:
            async with self._hashing:
                ok = await asyncio.to_thread(check)
        finally:
            self._waiting -= 1
        return agent if ok and agent is not None else None

    def agents(self) -> list[Agent]:
        """Every agent who may sign in, in the order loaded."""
        return list(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


class Tokens:
    """Stateless signed session tokens."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _mac(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, agent_id: str, now: float | None = None) -> str:
        """A token for `agent_id`, valid for ttl_s."""
        exp = int((time.time() if now is None else now) + self.ttl_s)
        payload = f"{agent_id}.{exp}"
        return f"{payload}.{self._mac(payload)}"

    def check(self, token: str | None, now: float | None = None) -> str | None:
        """The agent id inside a valid, unexpired token, else None."""
        if not token or token.count(".") < 2:
            return None
        payload, _, mac = token.rpartition(".")
        if not hmac.compare_digest(self._mac(payload), mac):
            return None
        agent_id, _, exp = payload.rpartition(".")
        try:
            if int(exp) < (time.time() if now is None else now):
                return None
        except ValueError:
            return None
        return agent_id or None
