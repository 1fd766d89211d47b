"""Redis over TLS against a real redis-server (and redis-sentinel) with `--tls-port` and a certificate made by
`openssl` in the test: the bus and the cache over `rediss://` and `rediss+sentinel://`, the redis-py TLS
options (`ssl_ca_certs`, `ssl_cert_reqs`) passed through the URL, and an untrusted server refused without the
password in the error. Skipped (failed under SCREENPOP_REQUIRE_ALL=1) when redis-server lacks TLS."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from screenpop.bus import BusError
from screenpop.bus.redis import RedisBus
from screenpop.cache.base import Entry
from screenpop.cache.redis import RedisCache
from tests.cluster.procs import Child, ChildError, tcp_open
from tests.conftest import free_port, need

pytestmark = pytest.mark.e2e

PASSWORD = "tls-s3cret"
SENTINEL_PASSWORD = "sentinel-s3cret"  # the Sentinel's own requirepass


@dataclass
class TlsRedis:
    """A primary on a TLS port and one TLS Sentinel monitoring it as `main`; the CA that signed both."""

    port: int
    sentinel_port: int
    ca: Path

    def url(self, scheme: str = "rediss", **query: str) -> str:
        """A URL of the primary (rediss) or through the Sentinel (rediss+sentinel), trusting the test's CA."""
        where = f"127.0.0.1:{self.sentinel_port}/main" if scheme.endswith("sentinel") else f"127.0.0.1:{self.port}"
        options = {"ssl_ca_certs": str(self.ca), **query}
        if scheme.endswith("sentinel"):
            options["sentinel_password"] = SENTINEL_PASSWORD
        return f"{scheme}://:{PASSWORD}@{where}/0?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in options.items())


def make_certs(d: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=screenpop test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return d / "ca.pem", d / "server.pem", d / "server.key"


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    """redis-server and redis-sentinel on TLS ports only, with a password (skips when TLS is not compiled in)."""
    for program in ("redis-server", "redis-sentinel", "openssl"):
        need(shutil.which(program) is not None, f"{program} is not installed")
    ca, cert, key = make_certs(tmp_path)
    tls = ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
           "--tls-auth-clients", "no"]
    port, sentinel_port = free_port(), free_port()
    server = Child("redis-tls", ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--requirepass", PASSWORD, "--dir",
                                 str(tmp_path), *tls], tmp_path)
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port 0\ntls-port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\ntls-replication yes\n"
                    f"tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\ntls-auth-clients no\n"
                    f"sentinel monitor main 127.0.0.1 {port} 1\nsentinel auth-pass main {PASSWORD}\n"
                    f"requirepass {SENTINEL_PASSWORD}\n")
    sentinel = Child("sentinel-tls", ["redis-sentinel", str(conf)], tmp_path)
    try:
        server.start()
        try:
            server.wait_until(lambda: tcp_open(port), "listening on its TLS port", 10)
        except ChildError:
            need("tls" not in server.log().lower(), f"redis-server has no TLS support: {server.log_tail(3)}")
            raise
        sentinel.start()
        sentinel.wait_until(lambda: tcp_open(sentinel_port), "listening on its TLS port", 10)
        yield TlsRedis(port, sentinel_port, ca)
    finally:
        sentinel.stop(timeout_s=5)
        server.stop(timeout_s=5)


async def round_trip(url: str, channel: str) -> str:
    """Publish one message on a bus of `url` and read it on another; the message read."""
    pub, sub = RedisBus(url), RedisBus(url)
    await pub.connect()
    await sub.connect()
    try:
        async with sub.subscribe(channel) as subscription:
            await pub.publish(channel, "over tls")
            return await asyncio.wait_for(anext(aiter(subscription)), 10)
    finally:
        await pub.disconnect()
        await sub.disconnect()


@pytest.mark.parametrize("scheme", ["rediss", "rediss+sentinel"])
async def test_bus_over_tls(tls_redis: TlsRedis, scheme: str) -> None:
    """The bus publishes and subscribes over TLS, directly and through a TLS Sentinel with its own password,
    trusting the test's CA."""
    assert await round_trip(tls_redis.url(scheme), f"tls-bus-{scheme}") == "over tls"


@pytest.mark.parametrize("scheme", ["rediss", "rediss+sentinel"])
async def test_cache_over_tls(tls_redis: TlsRedis, scheme: str) -> None:
    """The cache writes and reads an entry over TLS, directly and through a TLS Sentinel."""
    cache = RedisCache(tls_redis.url(scheme), prefix=f"tls-cache-{scheme}:", timeout=5)
    await cache.connect()
    try:
        await cache.set("k", Entry(value={"v": 1}, stored_at=1.0), 60)
        got = await cache.get("k")
        assert got is not None and got.value == {"v": 1} and cache.failures == 0
    finally:
        await cache.close()


async def test_an_untrusted_certificate_is_refused_without_the_password(tls_redis: TlsRedis) -> None:
    """Without the test's CA (the system's CAs only) connecting fails with a BusError naming the address, not the
    password; `ssl_cert_reqs=none` (no verification, for a test only) connects."""
    bus = RedisBus(f"rediss://:{PASSWORD}@127.0.0.1:{tls_redis.port}/0", timeout=5)
    with pytest.raises(BusError, match=f"127.0.0.1:{tls_redis.port}") as failure:
        await bus.connect()
    assert PASSWORD not in str(failure.value)
    unverified = RedisBus(f"rediss://:{PASSWORD}@127.0.0.1:{tls_redis.port}/0?ssl_cert_reqs=none", timeout=5)
    await unverified.connect()
    await unverified.disconnect()
