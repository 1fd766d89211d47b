"""Agent administration: the agents in effect (file + stored), changed at run time, live on every instance.

The config file's agents are the base; agents created or changed in the admin console are stored in the
state store by id and win over the file's (a deletion is stored too). A change is validated (no id or
address used twice, compared in canonical form: `screenpop.names`), stored with its audit entry, loaded into
this instance's directory at once and announced on the bus: every other instance reloads its directory from
the store, so a new agent signs in anywhere at once and a disabled one is signed out everywhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from screenpop.auth import Directory, hash_password
from screenpop.config import _NAME, AgentConfig, Config, ConfigError, Role, agent_collision
from screenpop.models import format_validation_error
from screenpop.store import AdminStore

log = logging.getLogger("screenpop.admin")

MIN_PASSWORD = 8


class AgentInput(BaseModel):
    """What the admin console sends for an agent. Without `password`, a change keeps the stored one."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_NAME)
    name: str = Field(default="", max_length=200)
    role: Role = "agent"
    extensions: list[str] = Field(default_factory=list, max_length=50)
    addresses: list[str] = Field(default_factory=list, max_length=50)
    disabled: bool = False
    password: str | None = Field(default=None, min_length=MIN_PASSWORD, max_length=1024)


class AgentAdmin:
    """The agents of one instance, as the file and the store define them together."""

    def __init__(self, config: Config, store: AdminStore, directory: Directory,
                 announce: Callable[[], Awaitable[None]]) -> None:
        self.config, self.store, self.directory, self.announce = config, store, directory, announce
        self.origin: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def effective(self) -> list[AgentConfig]:
        """The file's agents with the stored ones applied (file order first, then added ones)."""
        merged = {a.id: a for a in self.config.agents}
        origin = dict.fromkeys(merged, "file")
        for agent_id, body in (await self.store.agent_overrides()).items():
            if body is None:
                merged.pop(agent_id, None)
                origin.pop(agent_id, None)
                continue
            try:
                merged[agent_id] = AgentConfig.model_validate(body)
                origin[agent_id] = "admin"
            except ValidationError as err:
                log.error("stored agent %s is invalid and ignored: %s", agent_id, format_validation_error(err))
        self.origin = origin
        return list(merged.values())

    async def reload(self) -> None:
        """Load the agents in effect into this instance's directory."""
        async with self._lock:
            agents = await self.effective()
            problem = agent_collision(agents)
            if problem:  # stored by an older version, or two instances racing: keep serving, say why
                log.error("the stored agents collide (%s); the directory is left as it was", problem)
                return
            self.directory.load(agents)

    async def get(self, agent_id: str) -> AgentConfig | None:
        """The agent in effect with this id, or None."""
        return next((a for a in await self.effective() if a.id == agent_id), None)

    async def put(self, body: dict[str, Any], actor: str, *, create: bool) -> AgentConfig:
        """Create (`create`: the id must be new, a password is required) or change an agent; ConfigError
        (422) says why not."""
        try:
            wanted = AgentInput.model_validate(body)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err)) from None
        agents = {a.id: a for a in await self.effective()}
        old = agents.get(wanted.id)
        if create and old is not None:
            raise ConfigError(f"id: an agent {wanted.id!r} exists already")
        if not create and old is None:
            raise LookupError(wanted.id)
        if wanted.password is None and old is None:
            raise ConfigError(f"password: a new agent needs a password of at least {MIN_PASSWORD} characters")
        password_hash = (await asyncio.to_thread(hash_password, wanted.password) if wanted.password
                         else old.password_hash if old is not None else "")
        try:
            agent = AgentConfig(id=wanted.id, name=wanted.name, role=wanted.role, disabled=wanted.disabled,
                                extensions=[e.strip() for e in wanted.extensions if e.strip()],
                                addresses=[a.strip() for a in wanted.addresses if a.strip()],
                                password_hash=password_hash)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err)) from None
        problem = agent_collision([a for a in agents.values() if a.id != agent.id] + [agent])
        if problem:
            raise ConfigError(problem)
        detail = {"agent": self.public(agent), "password_changed": bool(wanted.password)}
        await self.store.put_agent(agent.id, agent.model_dump(mode="json"), actor, detail)
        await self.reload()
        await self.announce()
        return agent

    async def delete(self, agent_id: str, actor: str) -> bool:
        """Remove an agent (file or admin); False when there is none with this id."""
        if await self.get(agent_id) is None:
            return False
        await self.store.put_agent(agent_id, None, actor, {})
        await self.reload()
        await self.announce()
        return True

    def public(self, agent: AgentConfig) -> dict[str, Any]:
        """What the console shows of an agent: never the password hash."""
        return {"id": agent.id, "name": agent.name, "role": agent.role, "extensions": list(agent.extensions),
                "addresses": list(agent.addresses), "disabled": agent.disabled,
                "origin": self.origin.get(agent.id, "file")}
