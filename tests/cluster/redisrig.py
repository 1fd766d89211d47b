"""Redis as a deployment runs it: a primary, replicas (`--replicaof`) and Sentinels, on free loopback ports.

    rig = RedisRig(tmp, replicas=1, sentinels=3); rig.start()
    rig.primary.url                      redis://127.0.0.1:<port>/0 of the current primary
    rig.sentinel_addrs                   [("127.0.0.1", port), ...] for redis-py's Sentinel
    rig.failover()                       SENTINEL FAILOVER; returns the new primary once every Sentinel names it
    rig.restart_primary(down_s=2.5)      stop the primary (SHUTDOWN SAVE), wait, start it on the same port
    rig.close()

Nothing is kept after close (the data directory is the caller's temp dir). Blocking calls: in an async test,
run them with `await asyncio.to_thread(rig.failover)` so that sockets keep being read meanwhile.
"""

from __future__ import annotations

import functools
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.cluster.procs import Child, ChildError
from tests.conftest import free_port

MASTER_NAME = "screenpop"
REDIS_ERRORS = (OSError, redis.RedisError)


def redis_missing() -> str | None:
    """Why the rig cannot run here (a missing program), or None."""
    for program in ("redis-server", "redis-sentinel"):
        if shutil.which(program) is None:
            return f"{program} is not installed (Debian: apt-get install redis-server redis-sentinel)"
    return None


def _client(port: int) -> redis.Redis:
    """A client that tries once (the rig polls on its own; redis-py's default retries would hide the timing)."""
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=1,
                       decode_responses=True, retry=Retry(NoBackoff(), 0))


@dataclass
class RedisNode:
    """One data node (primary or replica) with its own port and directory."""

    name: str
    port: int
    workdir: Path
    child: Child

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A new client on this node (the caller closes it)."""
        return _client(self.port)

    def role(self) -> str:
        """`master` or `slave`, as the node says (ROLE)."""
        with self.client() as r:
            return str(r.role()[0])


class RedisRig:
    """A primary, `replicas` replicas and `sentinels` Sentinels monitoring the primary as MASTER_NAME."""

    def __init__(self, workdir: Path, *, replicas: int = 1, sentinels: int = 3, down_after_ms: int = 5000,
                 failover_timeout_ms: int = 10_000) -> None:
        self.workdir = workdir
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.nodes: list[RedisNode] = []
        for i in range(1 + replicas):
            port = free_port()
            d = workdir / f"redis-{i}"
            d.mkdir(parents=True, exist_ok=True)
            self.nodes.append(RedisNode(f"redis-{i}", port, d, Child(f"redis-{i}", [], workdir)))
        self.primary = self.nodes[0]
        self.sentinels: list[Child] = []
        self.sentinel_ports: list[int] = [free_port() for _ in range(sentinels)]
        self.master_name = MASTER_NAME

    # -- start and stop --------------------------------------------------------------------------
    def _node_args(self, node: RedisNode) -> list[str]:
        args = ["redis-server", "--port", str(node.port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                "no", "--dir", str(node.workdir), "--daemonize", "no", "--logfile", "",
                "--repl-diskless-sync-delay", "0"]  # a replica syncs at once (the default waits 5 s)
        if node is not self.primary:
            args += ["--replicaof", "127.0.0.1", str(self.primary.port)]
        return args

    def start_node(self, node: RedisNode, timeout_s: float = 10) -> None:
        """Start one data node on its port (a replica of the current primary unless it is the primary)."""
        node.child.args = self._node_args(node)
        node.child.start()

        def answers() -> bool:
            with node.client() as r:
                return bool(r.ping())

        node.child.wait_until(answers, "answering PING", timeout_s, errors=REDIS_ERRORS)

    def start(self, timeout_s: float = 20) -> None:
        """Start every node and Sentinel; return once each Sentinel knows every replica and the other Sentinels."""
        for node in self.nodes:
            self.start_node(node)
        quorum = len(self.sentinel_ports) // 2 + 1
        for i, port in enumerate(self.sentinel_ports):
            conf = self.workdir / f"sentinel-{i}.conf"  # Sentinel rewrites its file: one each, writable
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\ndir {self.workdir}\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {self.primary.port} {quorum}\n"
                f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.master_name} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.master_name} 1\n")
            child = Child(f"sentinel-{i}", ["redis-sentinel", str(conf)], self.workdir)
            child.start()
            self.sentinels.append(child)
        for node in self.nodes[1:]:
            node.child.wait_until(functools.partial(self._replica_in_sync, node), "in sync with the primary",
                                  timeout_s, errors=REDIS_ERRORS)
        for i, child in enumerate(self.sentinels):
            child.wait_until(functools.partial(self._sentinel_knows_all, i), "aware of every replica and Sentinel",
                             timeout_s, every_s=0.2, errors=REDIS_ERRORS)

    def close(self) -> None:
        """Stop every Sentinel and node (SIGTERM, then SIGKILL)."""
        for child in [*self.sentinels, *(n.child for n in self.nodes)]:
            child.stop(timeout_s=5)

    def __enter__(self) -> RedisRig:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the nodes and Sentinels say ------------------------------------------------------------
    @property
    def sentinel_addrs(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", p) for p in self.sentinel_ports]

    def sentinel(self, i: int) -> redis.Redis:
        """A new client on Sentinel i (the caller closes it)."""
        return _client(self.sentinel_ports[i])

    def _replica_in_sync(self, node: RedisNode) -> bool:
        with node.client() as r:
            info = r.info("replication")
        return bool(info.get("role") == "slave" and info.get("master_link_status") == "up"
                    and info.get("master_port") == self.primary.port)

    def _sentinel_knows_all(self, i: int) -> bool:
        with self.sentinel(i) as s:
            master = s.sentinel_master(self.master_name)
            replicas = [r for r in s.sentinel_slaves(self.master_name)
                        if not ({"s_down", "o_down", "disconnected"} & set(str(r.get("flags", "")).split(",")))]
        return int(master["num-other-sentinels"]) >= len(self.sentinels) - 1 \
            and len(replicas) >= len(self.nodes) - 1

    def primary_by_sentinel(self, i: int) -> int:
        """The port Sentinel i names as the primary."""
        with self.sentinel(i) as s:
            _, port = s.sentinel_get_master_addr_by_name(self.master_name)
        return int(port)

    def node_on(self, port: int) -> RedisNode:
        return next(n for n in self.nodes if n.port == port)

    # -- failures --------------------------------------------------------------------------------
    def wait_primary(self, not_port: int | None = None, timeout_s: float = 20) -> RedisNode:
        """Until every Sentinel names the same primary (other than `not_port`), it says it is master and
        accepts a write; that node becomes `self.primary`."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                ports = {self.primary_by_sentinel(i) for i in range(len(self.sentinels))}
                if len(ports) == 1 and (port := ports.pop()) != not_port:
                    node = self.node_on(port)
                    with node.client() as r:
                        if r.role()[0] == "master" and r.set("screenpop:rig:probe", str(time.time())):
                            self.primary = node
                            return node
                last = f"Sentinels name {sorted(ports)}"
            except REDIS_ERRORS as err:
                last = repr(err)
            time.sleep(0.1)
        raise ChildError(f"no agreed writable primary within {timeout_s} s ({last})")

    def failover(self, timeout_s: float = 20) -> RedisNode:
        """Force a failover (SENTINEL FAILOVER on Sentinel 0) and return the new primary once agreed and writable.

        The old primary keeps saying `master` (and taking writes from whoever still has its address) until the
        Sentinels turn it into a replica, about 10 s later: `wait_demoted(old)` waits for that."""
        old = self.primary.port
        deadline = time.monotonic() + timeout_s
        while True:  # NOGOODSLAVE until the Sentinel has fresh INFO from the replica: retry
            try:
                with self.sentinel(0) as s:
                    s.execute_command("SENTINEL FAILOVER", self.master_name)
                break
            except redis.ResponseError as err:
                if time.monotonic() >= deadline:
                    raise ChildError(f"SENTINEL FAILOVER refused: {err}") from err
                time.sleep(0.2)
        return self.wait_primary(not_port=old, timeout_s=max(1.0, deadline - time.monotonic()))

    def wait_demoted(self, node: RedisNode, timeout_s: float = 20) -> None:
        """Until `node` is a replica in sync with the current primary."""
        node.child.wait_until(lambda: self._replica_in_sync(node), "a replica of the new primary", timeout_s,
                              every_s=0.1, errors=REDIS_ERRORS)

    def stop_primary(self, save: bool = True) -> RedisNode:
        """Stop the primary: SHUTDOWN SAVE NOW (its data is reloaded on start) or SIGKILL (`save=False`)."""
        node = self.primary
        if save:
            try:
                with node.client() as r:
                    r.shutdown(save=True, now=True)  # NOW: no wait for lagging replicas
            except REDIS_ERRORS:
                pass
            if node.child.wait(10) is None:
                node.child.kill()
        else:
            node.child.kill()
        return node

    def restart_primary(self, down_s: float, save: bool = True) -> RedisNode:
        """Stop the primary, wait `down_s`, start it again on the same port; returns it once it answers.
        With Sentinels, a `down_s` beyond `down_after_ms` lets them fail over meanwhile (check `self.primary`)."""
        node = self.stop_primary(save=save)
        time.sleep(down_s)
        self.start_node(node)
        return node
