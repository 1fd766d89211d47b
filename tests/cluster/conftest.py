"""Fixtures of the cluster tests: a whole deployment (Redis with Sentinels, instances, HAProxy) per module or
per test, skipped with its reason when haproxy or redis-sentinel is missing (failed with SCREENPOP_REQUIRE_ALL=1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.balancer import haproxy_missing
from tests.cluster.harness import Cluster
from tests.cluster.redisrig import RedisRig, redis_missing
from tests.conftest import need


def need_cluster_parts() -> None:
    """Skip (or fail under SCREENPOP_REQUIRE_ALL=1) when a program the harness runs is missing."""
    for missing in (redis_missing(), haproxy_missing()):
        need(missing is None, missing or "")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three instances behind HAProxy on a Redis primary with a replica and three Sentinels, shared by a
    module's tests: tests that kill or restart a part use `cluster_factory` instead."""
    need_cluster_parts()
    with Cluster(tmp_path_factory.mktemp("cluster"), n=3) as c:
        yield c


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Start a cluster of one's own (keyword arguments of Cluster); every one started is closed after the test."""
    need_cluster_parts()
    started: list[Cluster] = []

    def make(**kwargs: Any) -> Cluster:
        c = Cluster(tmp_path / f"cluster-{len(started)}", **kwargs)
        started.append(c)
        return c.start()

    try:
        yield make
    finally:
        for c in reversed(started):
            c.close()


@pytest.fixture
def redis_rig(tmp_path: Path) -> Iterator[RedisRig]:
    """Redis alone: a primary, one replica and three Sentinels (no screenpop)."""
    need(redis_missing() is None, redis_missing() or "")
    with RedisRig(tmp_path / "redis") as rig:
        yield rig
