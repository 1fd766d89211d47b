"""The one Redis URL parser: what it reads, what it refuses, and that no error shows the password."""

from __future__ import annotations

import pytest

from screenpop.bus import BusError, bus_from_url
from screenpop.cache import CacheError, cache_from_url
from screenpop.redisurl import RedisURLError, parse_redis_url


def test_a_full_url_is_read() -> None:
    """Scheme, user, password, host, port and database come out of the URL; the password is not in repr."""
    url = parse_redis_url("rediss://bus:s3cr%40t@cache.example:6380/2?client_name=x")
    assert (url.scheme, url.username, url.password, url.host, url.port, url.db) == (
        "rediss", "bus", "s3cr@t", "cache.example", 6380, 2)
    assert url.address == "cache.example:6380" and url.tls
    assert "s3cr" not in repr(url)


def test_defaults_fill_what_the_url_leaves_out() -> None:
    """A bare redis:// means localhost, port 6379, database 0, no password."""
    url = parse_redis_url("redis://")
    assert (url.host, url.port, url.db, url.password, url.tls) == ("localhost", 6379, 0, None, False)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("http://:pw@host", "scheme 'http'"),
        ("redis://:pw@host:99999", "port"),
        ("redis://:pw@host:abc", "port"),
        ("redis://:pw@host/zero", "database number"),
        ("redis://[::1", "invalid Redis URL"),
    ],
)
def test_a_bad_url_says_why_without_the_password(text: str, why: str) -> None:
    """Each malformed URL raises RedisURLError naming the problem; the password never appears."""
    with pytest.raises(RedisURLError, match=why) as failure:
        parse_redis_url(text)
    assert "pw" not in str(failure.value).replace("port", "")


def test_an_option_redis_py_refuses_is_a_url_error() -> None:
    """A malformed query option fails when the client is built, as a RedisURLError without the password."""
    url = parse_redis_url("redis://:topsecret@host/0?socket_timeout=soon")
    with pytest.raises(RedisURLError) as failure:
        url.client()
    assert "topsecret" not in str(failure.value)


def test_scrub_hides_the_password_as_written_and_as_decoded() -> None:
    """scrub() replaces both the percent-encoded and the decoded password."""
    url = parse_redis_url("redis://:a%2Fb@host")
    assert url.scrub("a/b and a%2Fb") == "*** and ***"
    assert url.redacted() == "redis://:***@host"


def test_bus_and_cache_refuse_a_bad_url_with_their_own_error() -> None:
    """The bus and the cache use the same parser: a bad Redis URL is a BusError / CacheError at once."""
    with pytest.raises(BusError, match="port"):
        bus_from_url("redis://:pw@host:abc")
    with pytest.raises(CacheError, match="database number"):
        cache_from_url("redis://:pw@host/x")


def test_a_sentinel_url_is_read() -> None:
    """The Sentinel form gives the Sentinels (26379 by default), the master's name, the database and the data
    nodes' user and password; address names the master and the Sentinels, never a password."""
    url = parse_redis_url("redis+sentinel://app:p%40ss@s1:26380,s2,[::1]:26381/main/3?sentinel_password=sp")
    assert url.sentinel and not url.tls
    assert url.sentinels == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert (url.master, url.db, url.username, url.password) == ("main", 3, "app", "p@ss")
    assert (url.host, url.port) == ("s1", 26380)
    assert url.address == "master 'main' via Sentinels s1:26380,s2:26379,::1:26381"
    assert "p@ss" not in repr(url) and "sp" not in url.address
    assert parse_redis_url("rediss+sentinel://s1/main").tls
    assert parse_redis_url("redis+sentinel://s1/main/").db == 0


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("redis+sentinel://:pw@s1:26379", "names the master"),
        ("redis+sentinel://:pw@s1:26379/", "names the master"),
        ("redis+sentinel://:pw@s1,,s2/m", "host\\[:port\\] for each Sentinel"),
        ("redis+sentinel://:pw@s1:99999/m", "port"),
        ("redis+sentinel://:pw@s1/m/x", "database number"),
        ("redis+sentinel://:pw@s1/m/1/2", "master-name"),
    ],
)
def test_a_bad_sentinel_url_says_why_without_the_password(text: str, why: str) -> None:
    """Each malformed Sentinel URL raises RedisURLError naming the problem; the password never appears."""
    with pytest.raises(RedisURLError, match=why) as failure:
        parse_redis_url(text)
    assert "pw" not in str(failure.value)


def test_scrub_hides_the_sentinel_password_and_a_password_option() -> None:
    """scrub() also hides `sentinel_password=` and `password=` of the query, as written and as decoded."""
    url = parse_redis_url("redis+sentinel://:dpw@s1/m?sentinel_password=s%2Fpw&password=opt")
    assert url.redacted() == "redis+sentinel://:***@s1/m?sentinel_password=***&password=***"
    assert url.scrub("s/pw dpw opt") == "*** *** ***"


def test_the_sentinel_client_carries_the_options() -> None:
    """The client of a Sentinel URL: the data nodes get the URL's user, password, database and query options
    (winning over keyword options) over TLS for rediss+sentinel; the Sentinels get their own password and the
    same TLS options; no connection is opened."""
    from redis.asyncio.sentinel import SentinelManagedSSLConnection

    from screenpop.redisurl.sentinel import FollowingPool, SentinelRedis

    url = parse_redis_url("rediss+sentinel://app:dpw@s1:1,s2:2/main/2?sentinel_password=spw"
                          "&ssl_cert_reqs=none&ssl_ca_certs=/ca.pem&socket_timeout=3")
    client = url.client(socket_timeout=9, protocol=2)
    assert isinstance(client, SentinelRedis)
    pool = client.connection_pool
    assert isinstance(pool, FollowingPool) and pool.service_name == "main"
    assert issubclass(pool.connection_class, SentinelManagedSSLConnection)
    kw = pool.connection_kwargs
    assert (kw["username"], kw["password"], kw["db"], kw["socket_timeout"], kw["protocol"]) == ("app", "dpw", 2, 3.0, 2)
    assert (kw["ssl_cert_reqs"], kw["ssl_ca_certs"]) == ("none", "/ca.pem")
    sentinels = pool.sentinel_manager.sentinels
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
            for s in sentinels] == [("s1", 1), ("s2", 2)]
    skw = sentinels[0].connection_pool.connection_kwargs
    assert (skw["password"], skw["ssl_ca_certs"], skw["socket_timeout"]) == ("spw", "/ca.pem", 3.0)
    assert "username" not in skw or skw["username"] is None


def test_a_bad_sentinel_option_is_a_url_error() -> None:
    """A malformed query option of a Sentinel URL fails when the client is built, without any password."""
    url = parse_redis_url("redis+sentinel://:topsecret@s1/m?socket_timeout=soon&sentinel_password=alsosecret")
    with pytest.raises(RedisURLError) as failure:
        url.client()
    assert "topsecret" not in str(failure.value) and "alsosecret" not in str(failure.value)


def test_bus_and_cache_take_a_sentinel_url() -> None:
    """bus_from_url and cache_from_url build their Redis backends for the Sentinel forms too."""
    from screenpop.bus.redis import RedisBus
    from screenpop.cache.redis import RedisCache

    assert isinstance(bus_from_url("redis+sentinel://s1,s2/main"), RedisBus)
    assert isinstance(cache_from_url("rediss+sentinel://s1/main"), RedisCache)
