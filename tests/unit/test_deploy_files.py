"""The deployment files shipped with docs/deploy.md: docker-compose.yml parses and wires the parts the docs
describe, with the balancer configuration the cluster tests use. (No Docker engine runs it here.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from screenpop.redisurl import parse_redis_url

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
HAPROXY = ROOT / "docs" / "deploy" / "haproxy.cfg"


def compose() -> dict[str, Any]:
    """docker-compose.yml, parsed."""
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def filled(text: str) -> str:
    """`text` with compose's ${VAR...} interpolations replaced by a sample value."""
    return re.sub(r"\$\{[A-Z_]+(:\?[^}]*)?\}", "sample", text)


def test_compose_names_every_part() -> None:
    """The compose file has a Redis primary and replica, three Sentinels, three screenpop instances built from
    the Dockerfile, and HAProxy; the files it mounts or builds from exist."""
    services = compose()["services"]
    assert set(services) == {"redis-primary", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3",
                             "screenpop-1", "screenpop-2", "screenpop-3", "haproxy"}
    for i in (1, 2, 3):
        assert services[f"screenpop-{i}"]["build"] == "."
    assert (ROOT / "Dockerfile").is_file()
    assert "--replicaof" in services["redis-replica"]["command"]
    mounts = [v.split(":")[0] for v in services["haproxy"]["volumes"]]
    assert mounts == ["./docs/deploy/haproxy.cfg"] and (ROOT / mounts[0]).is_file()


def test_the_instances_share_one_sentinel_url_of_the_composed_sentinels() -> None:
    """Every instance gets the same settings; the bus URL is a Sentinel URL that parses and names the three
    Sentinel services and the master they monitor."""
    services = compose()["services"]
    envs = [services[f"screenpop-{i}"]["environment"] for i in (1, 2, 3)]
    assert envs[0] == envs[1] == envs[2]
    env = envs[0]
    for name in ("SCREENPOP_CONFIG", "SCREENPOP_SESSION_SECRET", "SCREENPOP_WEBHOOK_SECRET", "SCREENPOP_BUS_URL"):
        assert env[name]
    url = parse_redis_url(filled(env["SCREENPOP_BUS_URL"]))
    assert url.sentinel and {h for h, _ in url.sentinels} == {"sentinel-1", "sentinel-2", "sentinel-3"}
    sentinel_script = services["sentinel-1"]["command"][-1]
    assert f"sentinel monitor {url.master} redis-primary 6379 2" in sentinel_script
    assert "requirepass" in sentinel_script and "sentinel_password=" in env["SCREENPOP_BUS_URL"]


def test_haproxy_placeholders_are_all_filled_by_the_compose_file() -> None:
    """Each {{placeholder}} of docs/deploy/haproxy.cfg is replaced by the haproxy service's command, with
    /readyz as the health check and one server line per instance."""
    config = "\n".join(line.split("#")[0] for line in HAPROXY.read_text().splitlines())  # comments left out
    placeholders = set(re.findall(r"\{\{(\w+)\}\}", config))
    assert placeholders >= {"bind", "servers", "health_path"}
    script = compose()["services"]["haproxy"]["command"][-1]
    assert {p for p in placeholders if f"{{{{{p}}}}}" in script} == placeholders
    assert "s|{{health_path}}|/readyz|" in script
    assert all(f"screenpop-{i}:8000 check" in script for i in (1, 2, 3))
