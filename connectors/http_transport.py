"""What the HTTP connectors share below their options: aiohttp's TLS setting from `verify_tls` / `ca_file`, a
resolver that checks every address against the connector's lanes, aiohttp's failures turned into short
ConnectorErrors, and the draining of unwanted bodies. Used by the `http` connector (connectors.http) and the
HTTP journal (connectors.journal); it knows aiohttp and the lanes, nothing of options or mappings.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Iterator

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from connectors.base import ConnectorError
from connectors.lanes import LaneRefused, Lanes

__all__ = ["SAFETY_TIMEOUT_S", "LaneResolver", "check_literal", "drain", "http_errors", "tls_setting"]

SAFETY_TIMEOUT_S = 60.0  # the caller cancels much earlier; this only stops a request living forever
_CHUNK = 65536
_DRAIN_MAX = 65536


async def tls_setting(verify_tls: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    """aiohttp's `ssl` for these options: a context trusting `ca_file` (read in a thread), else `verify_tls`;
    ConnectorError when the file is no PEM bundle of CA certificates."""
    if ca_file is None:
        return verify_tls
    try:
        return await asyncio.to_thread(ssl.create_default_context, cafile=ca_file)
    except (OSError, ssl.SSLError, ValueError) as err:
        raise ConnectorError("ca_file is not a readable PEM bundle of CA certificates") from err


class LaneResolver(AbstractResolver):
    """aiohttp's resolver, checking every address against the connector's lanes before it is used."""

    def __init__(self, lanes: Lanes) -> None:
        self.lanes = lanes
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        """The addresses of `host`, each one allowed; LaneRefused (an OSError) when one is not."""
        found = await self._inner.resolve(host, port, family)
        for info in found:
            self.lanes.check_address(host, info["host"])
        return found

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()


def _refused(err: BaseException) -> LaneRefused | None:
    seen: BaseException | None = err
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, LaneRefused):
            return seen
        inner = getattr(seen, "os_error", None)
        seen = inner if isinstance(inner, BaseException) else seen.__cause__
    return None


def check_literal(lanes: Lanes, host: str) -> None:
    """An IP literal host is not resolved (aiohttp connects to it directly): check it here."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return
    lanes.check_address(host, host.strip("[]"))


@contextlib.contextmanager
def http_errors(where: str) -> Iterator[None]:
    """Turn aiohttp's failures into short ConnectorErrors; timeouts and cancellation pass through."""
    try:
        yield
    except (ConnectorError, TimeoutError):
        raise
    except (aiohttp.ClientError, OSError, ValueError) as err:
        refused = _refused(err)
        if refused is None:
            raise _short(err, where) from err
        raise ConnectorError(str(refused)) from None


def _short(err: BaseException, where: str) -> ConnectorError:
    """The short reason of an aiohttp failure."""
    try:
        raise err
    except aiohttp.ClientConnectorCertificateError:
        return ConnectorError(f"TLS certificate of {where} is not trusted")
    except aiohttp.ClientSSLError:
        return ConnectorError(f"TLS handshake with {where} failed")
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, ConnectionError):
        return ConnectorError(f"cannot connect to {where}")  # refused, reset, closed early
    except aiohttp.ClientPayloadError:
        return ConnectorError(f"incomplete response from {where}")
    except aiohttp.ClientResponseError:
        return ConnectorError(f"bad HTTP response from {where}")
    except BaseException:
        return ConnectorError(f"request to {where} failed")


async def drain(resp: aiohttp.ClientResponse) -> None:
    """Read a small unwanted body so the connection can be reused; a big one goes with its connection."""
    seen = 0
    with contextlib.suppress(aiohttp.ClientError, OSError, ValueError):
        async for chunk in resp.content.iter_chunked(_CHUNK):
            seen += len(chunk)
            if seen > _DRAIN_MAX:
                resp.close()
                return
