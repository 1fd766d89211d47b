"""A whole deployment on loopback: Redis (primary, replica, Sentinels), the stub back office, N `screenpop
serve` instances on one bus and cache, and HAProxy round-robin in front. See tests/cluster/README.md.

    with Cluster(tmp_path, n=3) as cluster:
        async with cluster.webhooks() as hooks, cluster.socket("alice", via=1) as alice:
            await hooks.send("c1", "ringing", agents=["1001"])      # through HAProxy
            await alice.wait_complete("c1")
        cluster.instances[0].kill()

Everything is bounded in time and stopped on exit, also when starting fails half-way.
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.cluster.balancer import Balancer
from tests.cluster.clients import AgentSocket, Webhooks
from tests.cluster.instances import AGENTS, Backend, Instance, start_all, write_config
from tests.cluster.redisrig import RedisRig


class Cluster:
    """The parts, started in order by `start()` (or `with`), stopped in reverse by `close()`.

    n: instances; replicas / sentinels: Redis nodes besides the primary (sentinels=0: none). Every instance gets
    SCREENPOP_BUS_URL and SCREENPOP_CACHE_URL = the primary's redis:// URL, unless `env` says otherwise: env
    holds more SCREENPOP_* settings, whose values may name {primary}, {sentinels} and {master} (e.g.
    "redis+sentinel://{sentinels}/{master}" for a Sentinel URL form). health_path: what HAProxy probes
    (default /readyz when the instances answer it, else /healthz). deadline_ms: the config's lookup deadline."""

    def __init__(self, workdir: Path, n: int = 3, *, replicas: int = 1, sentinels: int = 3,
                 env: dict[str, str] | None = None, health_path: str | None = None, check_inter: str = "200ms",
                 down_after_ms: int = 5000, deadline_ms: int = 3000) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.webhook_secret = secrets.token_hex(16)
        self.session_secret = secrets.token_hex(16)
        self._tokens: dict[str, str] = {}
        self.redis = RedisRig(workdir, replicas=replicas, sentinels=sentinels, down_after_ms=down_after_ms)
        self.backend = Backend(workdir)
        self.config_path = workdir / "screenpop.yaml"
        self.deadline_ms = deadline_ms
        self.extra_env = env or {}
        self.n = n
        self.instances: list[Instance] = []
        self.health_path = health_path
        self.check_inter = check_inter
        self.balancer: Balancer | None = None

    def env(self) -> dict[str, str]:
        """The SCREENPOP_* environment every instance gets."""
        return {
            "SCREENPOP_CONFIG": str(self.config_path),
            "SCREENPOP_BUS_URL": self.redis.primary.url,
            "SCREENPOP_CACHE_URL": self.redis.primary.url,
            "SCREENPOP_BUS_PREFIX": f"cluster-{uuid.uuid4().hex[:8]}",
            "SCREENPOP_WEBHOOK_SECRET": self.webhook_secret,
            "SCREENPOP_SESSION_SECRET": self.session_secret,
            "SCREENPOP_LOG_FORMAT": "text",
            **{k: v.format(**self.redis_fields()) for k, v in self.extra_env.items()},
        }

    def redis_fields(self) -> dict[str, str]:
        """What `env` values may name: {primary} (host:port), {sentinels} (host:port,host:port,...), {master}."""
        return {"primary": f"127.0.0.1:{self.redis.primary.port}", "master": self.redis.master_name,
                "sentinels": ",".join(f"{h}:{p}" for h, p in self.redis.sentinel_addrs)}

    def start(self) -> Cluster:
        """Start Redis, the back office, the instances (in parallel), then HAProxy; return once all answer."""
        self.redis.start()
        self.backend.start()
        write_config(self.config_path, self.backend.url, self.deadline_ms)
        env = self.env()
        self.instances = [Instance(i, self.workdir, env) for i in range(self.n)]
        start_all(self.instances)
        if self.health_path is None:
            ready = httpx.get(f"{self.instances[0].url}/readyz", timeout=2).status_code == 200
            self.health_path = "/readyz" if ready else "/healthz"
        self.balancer = Balancer(self.workdir, [i.port for i in self.instances], self.health_path, self.check_inter)
        self.balancer.start()
        return self

    def close(self) -> None:
        """Stop everything, in reverse order; never raises for a part that is already gone."""
        if self.balancer is not None:
            self.balancer.close()
        for inst in self.instances:
            inst.close()
        self.backend.close()
        self.redis.close()

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- addresses -------------------------------------------------------------------------------
    @property
    def lb(self) -> Balancer:
        assert self.balancer is not None, "the cluster is not started"
        return self.balancer

    def base_url(self, via: int | None = None) -> str:
        """HTTP base URL of the balancer (via=None) or of instance `via`."""
        return self.lb.url if via is None else self.instances[via].url

    def ws_url(self, via: int | None = None) -> str:
        """The agent socket's URL through the balancer (via=None) or on instance `via`."""
        return self.base_url(via).replace("http://", "ws://") + "/ws/agent"

    # -- clients ---------------------------------------------------------------------------------
    def token(self, agent: str) -> str:
        """A bearer token for `agent` (one login, kept): sessions live in the cluster's Redis, so it is valid
        on every instance."""
        if agent not in self._tokens:
            self._tokens[agent] = self.login(agent)
        return self._tokens[agent]

    def forget_token(self, agent: str) -> None:
        """The next `token(agent)` logs in again (after Redis lost the sessions)."""
        self._tokens.pop(agent, None)

    def login(self, agent: str, via: int | None = None) -> str:
        """Log in over HTTP with the agents' password; the bearer token."""
        from tests.cluster.instances import PASSWORD

        r = httpx.post(f"{self.base_url(via)}/api/login", json={"username": agent, "password": PASSWORD}, timeout=10)
        r.raise_for_status()
        return str(r.json()["token"])

    def webhooks(self, via: int | None = None) -> Webhooks:
        """Signed webhooks to the balancer (via=None) or to instance `via`: `async with cluster.webhooks() as h`."""
        return Webhooks(self.base_url(via), self.webhook_secret)

    async def event(self, call_id: str, event: str, via: int | None = None, **fields: Any) -> httpx.Response:
        """One signed webhook event (fields: caller, agents, at, called); the response."""
        return await self.webhooks(via).send(call_id, event, **fields)

    def socket(self, agent: str, via: int | None = None) -> AgentSocket:
        """`agent`'s socket through the balancer or on instance `via`: `async with cluster.socket("alice") as s`."""
        where = "lb" if via is None else f"#{via}"
        return AgentSocket(self.ws_url(via), self.token(agent), name=f"{agent}@{where}")

    async def snapshot(self, agent: str, via: int | None = None) -> list[dict[str, Any]]:
        """The cards a socket opened now by `agent` gets first (on the balancer or on instance `via`)."""
        async with self.socket(agent, via) as sock:
            assert sock.snapshot is not None
            return sock.snapshot

    def events(self) -> list[int | None]:
        """The telephony events each instance took, by its /healthz (None for an instance that does not answer)."""
        out: list[int | None] = []
        for inst in self.instances:
            try:
                out.append(inst.events())
            except httpx.HTTPError:
                out.append(None)
        return out

    def wait_out_of_rotation(self, i: int, timeout_s: float = 10) -> float:
        """Until HAProxy marks instance i DOWN; the seconds it took."""
        return self.lb.wait_state(i, "DOWN", timeout_s)

    def wait_in_rotation(self, i: int, timeout_s: float = 10) -> float:
        """Until HAProxy marks instance i UP again; the seconds it took."""
        return self.lb.wait_state(i, "UP", timeout_s)


def extension(agent: str) -> str:
    """The extension that rings for `agent` (alice 1001, bob 1002, carol 1003)."""
    return AGENTS[agent]


def new_call_id(prefix: str = "c") -> str:
    """A fresh call id."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
