"""Where the administrators' changes live: connector and agent overrides, and the audit trail.

The config file is the base and stays the import/export format; connectors changed through the admin API
are stored here as overrides that win by name (a deletion is an override too); agents changed in the admin
console likewise, by id (screenpop/agentadmin.py). `SCREENPOP_STATE_URL`
picks the store: a SQLAlchemy URL (`sqlite:////var/lib/screenpop/state.db`, `postgresql://...`, shared
by every instance) or, when unset, memory (changes last until restart, with a warning at start).
See docs/decisions/0004-admin-store.md.
"""

from __future__ import annotations

import abc
import asyncio
import json
import time
from typing import Any

from screenpop.errors import ConfigError, StoreError  # StoreError re-exported: the errors are one tree


class AdminStore(abc.ABC):
    """Connector overrides by name (None = deleted) and an append-only audit trail."""

    durable = False

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections and create the tables if needed. Raises StoreError when it cannot."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; must not raise."""

    @abc.abstractmethod
    async def overrides(self) -> dict[str, dict[str, Any] | None]:
        """Every override: connector name -> its full config (as stored), or None when deleted."""

    @abc.abstractmethod
    async def put(self, name: str, body: dict[str, Any] | None, actor: str, detail: dict[str, Any]) -> None:
        """Store (or, with body None, delete) a connector and append one audit entry, atomically."""

    @abc.abstractmethod
    async def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest audit entries, newest first: {at, actor, action, target, detail}."""

    @abc.abstractmethod
    async def agent_overrides(self) -> dict[str, dict[str, Any] | None]:
        """Every stored agent: agent id -> its full config (with its password hash), or None when deleted."""

    @abc.abstractmethod
    async def put_agent(self, agent_id: str, body: dict[str, Any] | None, actor: str, detail: dict[str, Any]) -> None:
        """Store (or, with body None, delete) an agent and append one audit entry (`agent.put`/`agent.delete`),
        atomically."""


class MemoryStore(AdminStore):
    """Overrides in memory: for a single instance that accepts losing admin changes at restart."""

    def __init__(self) -> None:
        self._overrides: dict[str, dict[str, Any] | None] = {}
        self._agents: dict[str, dict[str, Any] | None] = {}
        self._audit: list[dict[str, Any]] = []

    async def overrides(self) -> dict[str, dict[str, Any] | None]:
        """A copy of the overrides."""
        copied: dict[str, dict[str, Any] | None] = json.loads(json.dumps(self._overrides))
        return copied

    async def put(self, name: str, body: dict[str, Any] | None, actor: str, detail: dict[str, Any]) -> None:
        """Replace the override and remember who did it."""
        self._overrides[name] = json.loads(json.dumps(body))
        self._audit.append(_entry(actor, name, body, detail))
        del self._audit[:-10_000]

    async def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        return list(reversed(self._audit[-limit:]))

    async def agent_overrides(self) -> dict[str, dict[str, Any] | None]:
        """A copy of the stored agents."""
        copied: dict[str, dict[str, Any] | None] = json.loads(json.dumps(self._agents))
        return copied

    async def put_agent(self, agent_id: str, body: dict[str, Any] | None, actor: str, detail: dict[str, Any]) -> None:
        """Replace the stored agent and remember who did it."""
        self._agents[agent_id] = json.loads(json.dumps(body))
        self._audit.append(_entry(actor, agent_id, body, detail, "agent."))
        del self._audit[:-10_000]


class SqlStore(AdminStore):
    """Overrides in a SQL database through SQLAlchemy's async engine (SQLite or PostgreSQL)."""

    durable = True

    def __init__(self, url: str) -> None:
        from sqlalchemy import JSON, Column, Float, Integer, MetaData, String, Table

        self.url = _async_url(url)
        self.meta = MetaData()
        self.t_conn = Table("screenpop_connector_overrides", self.meta,
                            Column("name", String(64), primary_key=True), Column("body", JSON, nullable=True),
                            Column("updated_at", Float, nullable=False), Column("updated_by", String(64)))
        self.t_audit = Table("screenpop_audit", self.meta, Column("id", Integer, primary_key=True, autoincrement=True),
                             Column("at", Float, nullable=False), Column("actor", String(64), nullable=False),
                             Column("action", String(16), nullable=False), Column("target", String(64)),
                             Column("detail", JSON))
        self.t_agents = Table("screenpop_agent_overrides", self.meta,
                              Column("id", String(64), primary_key=True), Column("body", JSON, nullable=True),
                              Column("updated_at", Float, nullable=False), Column("updated_by", String(64)))
        self.engine: Any = None

    async def start(self) -> None:
        """Connect and create the two tables when they do not exist."""
        self.engine = await open_engine(self.url, self.meta, "the state store")

    async def close(self) -> None:
        """Dispose of the pool."""
        if self.engine is not None:
            await self.engine.dispose()

    async def overrides(self) -> dict[str, dict[str, Any] | None]:
        """Read every override."""
        from sqlalchemy import select

        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(self.t_conn.c.name, self.t_conn.c.body))).all()
        return {r.name: r.body for r in rows}

    async def put(self, name: str, body: dict[str, Any] | None, actor: str, detail: dict[str, Any]) -> None:
        """Upsert the override and append the audit entry in one transaction."""
        from sqlalchemy import delete, insert

        entry = _entry(actor, name, body, detail)
        async with self.engine.begin() as conn:
            await conn.execute(delete(self.t_conn).where(self.t_conn.c.name == name))
            await conn.execute(insert(self.t_conn).values(name=name, body=body, updated_at=entry["at"],
                                                          updated_by=actor))
            await conn.execute(insert(self.t_audit).values(**entry))

    async def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        from sqlalchemy import select

        t = self.t_audit
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.c.at, t.c.actor, t.c.action, t.c.target, t.c.detail)
                                       .order_by(t.c.id.desc()).limit(limit))).all()
        return [dict(r._mapping) for r in rows]

    async def agent_overrides(self) -> dict[str, dict[str, Any] | None]:
        """Read every stored agent."""
        from sqlalchemy import select

        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(self.t_agents.c.id, self.t_agents.c.body))).all()
        return {r.id: r.body for r in rows}

    async def put_agent(self, agent_id: str, body: dict[str, Any] | None, actor: str, detail: dict[str, Any]) -> None:
        """Upsert the agent and append the audit entry in one transaction."""
        from sqlalchemy import delete, insert

        entry = _entry(actor, agent_id, body, detail, "agent.")
        async with self.engine.begin() as conn:
            await conn.execute(delete(self.t_agents).where(self.t_agents.c.id == agent_id))
            await conn.execute(insert(self.t_agents).values(id=agent_id, body=body, updated_at=entry["at"],
                                                            updated_by=actor))
            await conn.execute(insert(self.t_audit).values(**entry))


def _entry(actor: str, name: str, body: dict[str, Any] | None, detail: dict[str, Any],
           prefix: str = "") -> dict[str, Any]:
    return {"at": time.time(), "actor": actor, "action": prefix + ("delete" if body is None else "put"),
            "target": name, "detail": detail}


def _async_url(url: str) -> str:
    for plain, driver in (("postgresql://", "postgresql+asyncpg://"), ("postgres://", "postgresql+asyncpg://"),
                          ("sqlite://", "sqlite+aiosqlite://")):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


def store_from_url(url: str | None) -> AdminStore:
    """The store named by SCREENPOP_STATE_URL (memory when unset)."""
    if not url or url == "memory://":
        return MemoryStore()
    if url.split("://", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "postgres"):
        return SqlStore(url)
    raise ConfigError("SCREENPOP_STATE_URL: unsupported scheme; expected sqlite:///path, postgresql://... or memory://")


async def open_engine(url: str, meta: Any, what: str) -> Any:
    """An async SQLAlchemy engine on `url` with `meta`'s tables created when missing; StoreError naming
    `what` (never the URL: it may hold a password) when the database cannot be opened."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, pool_pre_ping=True)
    try:
        await create_tables(engine, meta)
    except Exception as err:
        await engine.dispose()
        raise StoreError(f"cannot open {what}: {type(err).__name__}") from None
    return engine


async def create_tables(engine: Any, meta: Any, attempts: int = 6) -> None:
    """Create `meta`'s tables that do not exist yet. Instances starting together on one database race to
    create them (one sees a table missing that the other has just created, or finds SQLite's file locked):
    such an error is tried again after a short pause, when the tables are there or the lock is free."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            async with engine.begin() as conn:
                await conn.run_sync(meta.create_all)
            return
        except (OperationalError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05 * 2 ** attempt)
