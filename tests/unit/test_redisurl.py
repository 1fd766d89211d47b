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
