"""Where connectors may reach: the files they may open and the network addresses they may connect to.

    Lanes(data_dirs=(Path("/srv/screenpop-data"),),   SQLite and CSV files only under these folders
          forbidden=(state_db, config_file, ...),     never these files or folders (screenpop's own)
          allow=("crm.example.com", "10.20.0.0/16"))  outbound connections only to these hosts/networks

Files are compared after resolving symbolic links, each time a file is opened (not only when the connector
is configured), so a link changed later cannot lead out of the data folders.

Network: every address a host name resolves to is checked when the connection is made (so a DNS answer
that changes after the check cannot lead elsewhere: the connection goes to the checked address). Link-local
addresses (169.254.0.0/16, fe80::/10: where cloud metadata services answer with the machine's credentials)
and the known metadata addresses are refused unless a network of `allow` names them explicitly. With `allow`
set, only the hosts and networks it lists are reached. `Lanes()` (no data folders) opens files anywhere but
the forbidden ones: what a unit test of a kind uses; screenpop itself always passes its settings' lanes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LaneRefused", "Lanes"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("169.254.170.2"),
            ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200"))


class LaneRefused(OSError):
    """A connector tried to leave its lane: a file outside the data folders, or a refused address."""


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass(frozen=True)
class Lanes:
    """The files and addresses connectors may reach (see the module docstring)."""

    data_dirs: tuple[Path, ...] | None = None
    forbidden: tuple[Path, ...] = ()
    allow: tuple[str, ...] = ()

    def check_file(self, path: str | os.PathLike[str]) -> Path:
        """The file's real path; LaneRefused when it is one of screenpop's own or outside the data folders."""
        real = Path(os.path.realpath(path))
        for bad in self.forbidden:
            bad_real = Path(os.path.realpath(bad))
            if _within(real, bad_real) or real.name.startswith(bad_real.name + "-") and real.parent == bad_real.parent:
                raise LaneRefused("this file belongs to screenpop itself (state store, config or program); "
                                  "a connector may not read it")
        if self.data_dirs is not None and not any(_within(real, Path(os.path.realpath(d))) for d in self.data_dirs):
            folders = ", ".join(str(d) for d in self.data_dirs) or "none"
            raise LaneRefused(f"the file is outside the data folders (SCREENPOP_DATA_DIRS: {folders})")
        return real

    def _networks(self) -> list[IpNetwork]:
        nets: list[IpNetwork] = []
        for entry in self.allow:
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        return nets

    def _host_listed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for entry in self.allow:
            e = entry.lower()
            if e == host or (e.startswith("*.") and host.endswith(e[1:])):
                return True
        return False

    def check_address(self, host: str, address: str) -> None:
        """LaneRefused when `address` (one that `host` resolved to) may not be reached."""
        try:
            ip: IpAddress = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            raise LaneRefused(f"{host}: not an IP address: {address}") from None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        nets = self._networks()
        named = any(ip in n for n in nets)
        if (ip in METADATA or any(ip in n for n in LINK_LOCAL)) and not named:
            raise LaneRefused(f"{host} is a link-local or cloud metadata address ({ip}): refused "
                              "(list its network in SCREENPOP_CONNECTOR_ALLOW to allow it)")
        if self.allow and not named and not self._host_listed(host):
            raise LaneRefused(f"{host} ({ip}) is not in SCREENPOP_CONNECTOR_ALLOW")

    def check_host_name(self, host: str) -> None:
        """Check a host without resolving it (for drivers that resolve and connect by themselves, such as the
        database ones): an IP address is checked as such; with `allow` set, a name must be listed by name."""
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if self.allow and not self._host_listed(host):
                raise LaneRefused(f"{host} is not in SCREENPOP_CONNECTOR_ALLOW (list a database server by "
                                  "its name or use its address)") from None
            return
        self.check_address(host, host.strip("[]"))

    async def resolve(self, host: str, port: int) -> list[tuple[int, str]]:
        """Every (family, address) of `host` that may be reached; LaneRefused when one may not (a host
        whose addresses are partly refused is refused: a balancer's DNS would send some requests there)."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as err:
            raise OSError(f"cannot resolve {host}") from err
        found: list[tuple[int, str]] = []
        for family, _, _, _, sockaddr in infos:
            address = str(sockaddr[0])
            self.check_address(host, address)
            if (family, address) not in found:
                found.append((family, address))
        return found
